"""Sessions through the console script: the researcher's steering, session-only budgets, and
stop conditions, each recorded in the ledger with its reason."""

import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI, vibe

from vibe_research.research.state.experiments import rebuild_state
from vibe_research.research.state.ledger import ProposalRecord, RunStartRecord, SessionRecord, read

STEERING = "## Steering\n\nStay with n-grams for now.\nprefer: n-gram\n"


def _records(workspace: Path) -> list:
    return read(workspace / "notes" / "ledger.jsonl").records


def _stops(workspace: Path) -> list[SessionRecord]:
    return [r for r in _records(workspace) if isinstance(r, SessionRecord) and r.event == "stop"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_steering_is_read_every_turn_and_changes_what_the_offline_planner_proposes(
    tiny_workspace: Path,
) -> None:
    readme = tiny_workspace / "notes" / "README.md"
    template = readme.read_text(encoding="utf-8")
    readme.write_text(template.replace("## Steering\n", STEERING, 1), encoding="utf-8")
    command = [*CLI, "continue", "--auto", "2", "--budget", "4", "--runs", "2"]
    process = subprocess.Popen(
        command,
        cwd=tiny_workspace,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while not any(_offline_proposals(tiny_workspace)) and time.monotonic() < deadline:
        time.sleep(0.2)
    # while the n-gram sweep runs, the researcher changes course, without a restart
    text = readme.read_text(encoding="utf-8")
    readme.write_text(text.replace("prefer: n-gram", "prefer: seed"), encoding="utf-8")
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    first, second = _offline_proposals(tiny_workspace)
    assert first.move == "ngram/sweep:ngram.order=2..6" and "prefer: n-gram" in first.steering
    assert second.move.startswith("seeds/") and "prefer: seed" in second.steering
    starts = [r for r in _records(tiny_workspace) if isinstance(r, RunStartRecord)]
    # its own batch: a drift rerun (loop/drift.py) may add a side-by-side batch when the machine's
    # speed moved between the turns
    baseline = [r for r in starts if r.experiment.startswith("0000-") and r.batch is None]
    assert len(baseline) == 2 and {r.budget_s for r in starts} == {4.0}  # --runs 2 --budget 4
    assert _stops(tiny_workspace)[-1].reason == "2 unattended turn(s) done"


def _offline_proposals(workspace: Path) -> list[ProposalRecord]:
    ledger = workspace / "notes" / "ledger.jsonl"
    if not ledger.exists():
        return []
    return [
        r for r in _records(workspace) if isinstance(r, ProposalRecord) and r.source == "offline"
    ]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_session_stops_when_its_hours_are_up_and_says_so_in_the_ledger(
    tiny_workspace: Path,
) -> None:
    started = time.monotonic()
    done = vibe(tiny_workspace, "continue", "--auto", "5", "--max-hours", "0.001")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopping: the session's 0.001 h are up" in done.stderr
    stop = _stops(tiny_workspace)[-1]
    assert stop.reason == "the session's 0.001 h are up" and stop.turns >= 1
    # the baseline and the first proposal ran; no turn began after the 3.6 s were up
    assert time.monotonic() - started < 600
    assert len(rebuild_state(_records(tiny_workspace)).experiments) == 2
