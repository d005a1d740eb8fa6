"""`vibe-research status` and `report` as a user runs them: real subprocesses in a workspace."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vibe_research.research.state import ledger as L


def _cli(cwd: Path, *args: str, columns: int = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-c", "from vibe_research.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def workspace(tmp_path: Path, records: list[L.Record]) -> Path:
    (tmp_path / "vibe-research.toml").write_text(
        '[research]\nquestion = "Which tiny model tells the best story?"\n'
    )
    for record in records:
        L.append(tmp_path / "notes" / "ledger.jsonl", record)
    return tmp_path


def test_status_prints_the_leaderboard_and_json(workspace: Path) -> None:
    shown = _cli(workspace, "status")
    assert shown.returncode == 0, shown.stderr
    assert "Which tiny model tells the best story?" in shown.stdout
    assert shown.stdout.index("★ 0001 Wider model") < shown.stdout.index("0000 Baseline")
    assert (
        "1.2050 ± 0.0124" in shown.stdout
        and "Interrupted runs: 0002-n-gram-teacher-s3" in shown.stdout
    )
    data = json.loads(_cli(workspace, "status", "--json").stdout)
    assert data["best"] == "0001-wider-model" and data["objective"] == "both"
    assert [row["experiment"] for row in data["leaderboard"]] == [
        "0001-wider-model",
        "0002-n-gram-teacher",
        "0000-baseline",
    ]
    assert data["leaderboard"][0]["bpb"]["n"] == 3
    assert data["interrupted"] == [
        {"experiment": "0002-n-gram-teacher", "run": "0002-n-gram-teacher-s3"}
    ]


def test_status_in_80_columns_keeps_the_experiment_and_gives_up_lesser_columns(
    workspace: Path,
) -> None:
    shown = _cli(workspace, "status", columns=80)
    assert shown.returncode == 0, shown.stderr
    assert "★ 0001 Wider" in shown.stdout and "0000 Baseline" in shown.stdout
    assert "commit" not in shown.stdout and "bpb" in shown.stdout and "verdict" in shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80


def test_report_renders_notes_and_figures_and_exports_one_file(workspace: Path) -> None:
    done = _cli(workspace, "report", "--export", "all-notes.md", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["experiments"] == 3 and len(result["changed"]) == 8
    assert (workspace / "notes" / "figures" / "progress.png").is_file()
    exported = (workspace / "all-notes.md").read_text()
    assert exported.startswith("# Research notes") and "## 0002 · N-gram teacher" in exported
    again = _cli(workspace, "report", "--export", "-")
    assert again.returncode == 0 and again.stdout == exported


def test_outside_a_workspace_status_says_how_to_make_one(tmp_path: Path) -> None:
    shown = _cli(tmp_path, "status")
    assert (
        shown.returncode == 2
        and "vibe-research init" in shown.stderr
        and "Traceback" not in shown.stderr
    )
