"""`continue` against a real HTTP endpoint that fails the way real ones do: every failure is
recorded, one bad answer never ends a session, the spend cap holds, stop conditions say why,
and the researcher's uncommitted files are never touched."""

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import vibe
from openai_server import server_process

from vibe_research.llm.calllog import CallRecord
from vibe_research.research.state.experiments import rebuild_state
from vibe_research.research.state.ledger import LLMFailureRecord, SessionRecord, read


@contextmanager
def fault_server(*args: str) -> Iterator[str]:
    """tests/openai_server.py as its own process, as a researcher's endpoint would be."""
    with server_process(*args) as (address, _):
        yield address


def _configure(workspace: Path, judge: str, max_usd: float, session: str) -> None:
    """Test models with prices, tight timeouts, the judge backend and [session] limits."""
    settings = workspace / "vibe-research.toml"
    text = settings.read_text(encoding="utf-8")
    text = text.replace('proposer_model = "gpt-4.1"', 'proposer_model = "test-model"')
    text = text.replace('judge_model = "gpt-4.1-mini"', 'judge_model = "test-judge"')
    text = text.replace("max_usd = 5.0", f"max_usd = {max_usd}")
    text = text.replace(
        "deadline_s = 120",
        "deadline_s = 20\ntimeout_s = 3\nretry_backoff_s = 0.2\nmax_backoff_s = 1",
    )
    text = text.replace('[judge]\nbackend = "auto"', f'[judge]\nbackend = "{judge}"')
    start = text.index("[session]")
    text = text[:start] + f"[session]\n{session}\n"
    text += (
        '\n[llm.prices."test-model"]\ninput_per_mtok = 2.0\noutput_per_mtok = 8.0\n'
        '\n[llm.prices."test-judge"]\ninput_per_mtok = 0.4\noutput_per_mtok = 1.6\n'
    )
    settings.write_text(text, encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "an endpoint for the test"], cwd=workspace, check=True)


def _env(address: str) -> dict[str, str]:
    return {**os.environ, "OPENAI_BASE_URL": address, "OPENAI_API_KEY": "sk-test"}


def _ledger(workspace: Path) -> list:
    return read(workspace / "notes" / "ledger.jsonl").records


def _calls(workspace: Path) -> list[CallRecord]:
    log = workspace / ".vibe" / "llm-calls.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [CallRecord.model_validate_json(line) for line in lines]


def _git_status(workspace: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=workspace, capture_output=True, text=True
    ).stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_fault_soak_finishes_five_turns_with_every_failure_recorded(tiny_workspace: Path) -> None:
    _configure(
        tiny_workspace, "llm", max_usd=2.0, session="max_failures = 5\nfailure_backoff_s = 0"
    )
    mine = tiny_workspace / "experiments" / "my_idea.py"
    mine.write_text("# the researcher's own, not committed\n", encoding="utf-8")
    ideas = tiny_workspace / "notes" / "ideas.md"
    ideas.write_text("# hunches\n", encoding="utf-8")
    with fault_server("--fail-rate", "0.3", "--seed", "3") as address:
        done = vibe(tiny_workspace, "continue", "--auto", "5", env=_env(address), timeout=1700)
    assert done.returncode == 0, done.stderr[-3000:]
    records = _ledger(tiny_workspace)
    stop = [r for r in records if isinstance(r, SessionRecord) and r.event == "stop"][-1]
    assert stop.reason == "5 unattended turn(s) done"
    calls = _calls(tiny_workspace)
    failed_calls = [call for call in calls if call.error]
    assert failed_calls, "a 30% fault rate produced no failed call"
    assert sum(call.cost_usd for call in calls) <= 2.0  # the cap held
    state = rebuild_state(records)
    for failure in (r for r in records if isinstance(r, LLMFailureRecord)):
        page = tiny_workspace / "notes" / "experiments" / f"{failure.experiment}.md"
        assert failure.reason[:60] in page.read_text(encoding="utf-8")
    assert all(e.decision is not None or e.open for e in state.experiments.values())
    assert mine.read_text(encoding="utf-8") == "# the researcher's own, not committed\n"
    assert ideas.read_text(encoding="utf-8") == "# hunches\n"
    assert _git_status(tiny_workspace).split("\n")[:-1] == [
        "?? experiments/my_idea.py",
        "?? notes/ideas.md",
    ]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_failed_turns_in_a_row_stop_the_session_with_the_reason(tiny_workspace: Path) -> None:
    _configure(
        tiny_workspace, "heuristic", max_usd=5.0, session="max_failures = 2\nfailure_backoff_s = 0"
    )
    with fault_server("--fail-rate", "1", "--faults", "not_json") as address:
        done = vibe(tiny_workspace, "continue", "--auto", "5", env=_env(address))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopping: 2 failed turns in a row" in done.stderr
    records = _ledger(tiny_workspace)
    stop = [r for r in records if isinstance(r, SessionRecord) and r.event == "stop"][-1]
    assert stop.reason == "2 failed turns in a row (session.max_failures = 2)"
    failures = [r for r in records if isinstance(r, LLMFailureRecord)]
    assert {f.stage for f in failures} == {"propose", "suggest"}
    assert {f.failure for f in failures} == {"invalid_reply"}
    verdicts = [e.decision.verdict for e in rebuild_state(records).experiments.values()]
    assert verdicts == ["baseline", "failed", "failed"]
    assert _git_status(tiny_workspace) == ""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_no_new_best_for_patience_turns_stops_the_session(tiny_workspace: Path) -> None:
    _configure(
        tiny_workspace, "heuristic", max_usd=5.0, session="max_failures = 9\nfailure_backoff_s = 0"
    )
    with fault_server("--fail-rate", "1", "--faults", "wrong_schema") as address:
        done = vibe(tiny_workspace, "continue", "--auto", "5", "--patience", "2", env=_env(address))
    assert done.returncode == 0, done.stderr[-3000:]
    stop = [r for r in _ledger(tiny_workspace) if isinstance(r, SessionRecord)][-1]
    assert stop.event == "stop" and stop.reason == "no new best in 2 turns (patience 2)"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_spend_cap_stops_the_session_before_a_call_could_pass_it(tiny_workspace: Path) -> None:
    _configure(tiny_workspace, "heuristic", max_usd=0.01, session="max_failures = 3")
    with fault_server("--fail-rate", "0") as address:
        done = vibe(tiny_workspace, "continue", "--auto", "3", env=_env(address))
    assert done.returncode == 0, done.stderr[-3000:]
    stop = [r for r in _ledger(tiny_workspace) if isinstance(r, SessionRecord)][-1]
    assert stop.reason.startswith("the spend cap: llm.max_usd = $0.01 would be passed")
    calls = _calls(tiny_workspace)
    spent = sum(call.cost_usd for call in calls)
    assert spent <= 0.01
    assert (
        json.loads((tiny_workspace / "notes" / "ledger.jsonl").read_text().splitlines()[-1])["kind"]
        == "session"
    )
