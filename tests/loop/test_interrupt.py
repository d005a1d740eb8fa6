"""Ctrl-C and SIGKILL of `continue`: nothing survives, nothing is lost, nothing is counted twice."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI, vibe

from vibe_research.research.state.experiments import rebuild_state
from vibe_research.research.state.ledger import RunEndRecord, RunStartRecord, read
from vibe_research.runs.leftovers import processes_of


def _records(workspace: Path) -> list:
    ledger = workspace / "notes" / "ledger.jsonl"
    return read(ledger).records if ledger.exists() else []


def _wait_for(
    workspace: Path, kind: type, count: int, process: subprocess.Popen, timeout: float = 600
) -> None:
    deadline = time.monotonic() + timeout
    while sum(isinstance(r, kind) for r in _records(workspace)) < count:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no {kind.__name__} record in {timeout} s"
        time.sleep(0.2)


def _start(workspace: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "continue", "--auto", "1"],
        cwd=workspace,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _experiments_tree(workspace: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(workspace)): p.read_bytes()
        for p in (workspace / "experiments").rglob("*.py")
    }


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_ctrl_c_stops_runs_records_them_and_resume_finishes(tiny_workspace: Path) -> None:
    before = _experiments_tree(tiny_workspace)
    process = _start(tiny_workspace)
    _wait_for(tiny_workspace, RunStartRecord, 2, process)
    time.sleep(2)  # the first run is training now
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    runs = tiny_workspace / ".vibe" / "runs"
    assert all(not processes_of(folder) for folder in runs.iterdir())
    ends = [r for r in _records(tiny_workspace) if isinstance(r, RunEndRecord)]
    assert ends and all(end.outcome == "interrupted" for end in ends)
    assert _experiments_tree(tiny_workspace) == before
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=tiny_workspace, capture_output=True, text=True
        ).stdout
        == ""
    )

    resumed = vibe(tiny_workspace, "continue", "--auto", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "was interrupted" in resumed.stderr
    baseline = next(iter(rebuild_state(_records(tiny_workspace)).experiments.values()))
    own = [run for run in baseline.measured_runs if run.start.batch is None]  # no drift reruns
    assert sorted(run.seed for run in own) == [0, 1]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigkill_mid_turn_resumes_without_losing_or_double_counting(tiny_workspace: Path) -> None:
    process = _start(tiny_workspace)
    _wait_for(tiny_workspace, RunEndRecord, 1, process)  # one run recorded, the next one running
    process.kill()
    process.communicate(timeout=60)
    started = [r.run for r in _records(tiny_workspace) if isinstance(r, RunStartRecord)]

    resumed = vibe(tiny_workspace, "continue", "--auto", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = _records(tiny_workspace)
    state = rebuild_state(records)
    baseline = next(iter(state.experiments.values()))
    # the baseline's own runs (a drift rerun beside the next turn's candidate may add a batch)
    own = {run.run for run in baseline.measured_runs if run.start.batch is None}
    assert sorted(baseline.runs[run].seed for run in own) == [0, 1]  # each seed once
    ended = [
        r.run for r in records if isinstance(r, RunEndRecord) and r.outcome == "ok" and r.run in own
    ]
    assert sorted(ended) == sorted(own)  # and recorded once
    assert all(not processes_of(tiny_workspace / ".vibe" / "runs" / run) for run in started)
    assert len(state.experiments) == 2  # the baseline, then the one unattended turn
    assert json.loads(vibe(tiny_workspace, "status", "--json", timeout=60).stdout)
