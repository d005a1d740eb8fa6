"""`vibe-research ui` as a command: its help, its one-line errors, and what the server refuses."""

import http.client
import socket
from pathlib import Path
from urllib.parse import urlsplit

from conftest import dashboard, vibe


def test_help_documents_the_command(tmp_path: Path) -> None:
    done = vibe(tmp_path, "ui", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--port" in text and "--host" in text and "Read-only" in text


def _one_error_line(done) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_outside_a_workspace_says_how_to_get_one(tmp_path: Path) -> None:
    assert "vibe-research init" in _one_error_line(vibe(tmp_path, "ui", timeout=60))


def test_a_port_in_use_says_to_pick_another(repo_workspace: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(vibe(repo_workspace, "ui", "--port", str(port), timeout=60))
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port" in line


def test_a_damaged_ledger_says_how_to_repair_it(repo_workspace: Path) -> None:
    with (repo_workspace / "notes" / "ledger.jsonl").open("a", encoding="utf-8") as ledger:
        ledger.write('{"kind": "proposal", "experiment": "0099-x"}\n')
    line = _one_error_line(vibe(repo_workspace, "ui", timeout=60))
    assert "not a valid ledger record" in line and "vibe-research ledger repair" in line


def _request(url: str, method: str, path: str, host: str | None = None) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request(method, path, headers={"Host": host} if host else {})
    answer = connection.getresponse()
    body = answer.read().decode("utf-8")
    connection.close()
    return answer.status, body


def test_it_is_read_only_and_answers_only_to_its_own_name(repo_workspace: Path) -> None:
    with dashboard(repo_workspace) as url:
        assert urlsplit(url).hostname == "127.0.0.1"
        assert _request(url, "GET", "/")[0] == 200
        assert _request(url, "GET", "/api/live")[0] == 200
        assert _request(url, "GET", "/experiments/0099-nothing")[0] == 404
        assert _request(url, "GET", "/static/../vibe-research.toml")[0] == 404
        for method in ("POST", "PUT", "DELETE"):
            assert _request(url, method, "/")[0] == 501
        # a page of another site that rebinds its name to 127.0.0.1 gets nothing
        assert _request(url, "GET", "/", host="attacker.example:80")[0] == 421


def test_a_ledger_damaged_while_serving_is_named_on_the_page(repo_workspace: Path) -> None:
    with dashboard(repo_workspace) as url:
        with (repo_workspace / "notes" / "ledger.jsonl").open("a", encoding="utf-8") as ledger:
            ledger.write('{"kind": "note", "experiment": "0000-baseline"}\n')
        for path in ("/", "/api/live"):
            status, body = _request(url, "GET", path)
            assert status == 500 and "not a valid ledger record" in body, body
            assert "vibe-research ledger repair" in body
