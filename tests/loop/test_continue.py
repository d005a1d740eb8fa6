"""`vibe-research continue` end to end: offline planner, heuristic judge, real data, tiny budgets."""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import vibe

from vibe_research.research.state.experiments import rebuild_state
from vibe_research.research.state.ledger import read


def test_no_terminal_and_no_flag_exits_at_once(tiny_workspace: Path) -> None:
    done = vibe(tiny_workspace, "continue", timeout=60)
    assert done.returncode == 2
    assert "--auto N" in done.stderr and done.stderr.count("\n") == 1
    assert not (tiny_workspace / "notes" / "ledger.jsonl").exists()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_auto_three_turns_from_a_fresh_workspace(tiny_workspace: Path) -> None:
    done = vibe(tiny_workspace, "continue", "--auto", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    state = rebuild_state(read(tiny_workspace / "notes" / "ledger.jsonl").records)
    experiments = list(state.experiments.values())
    assert [e.proposal.source for e in experiments] == ["baseline", "offline", "offline", "offline"]
    assert all(e.decision is not None for e in experiments)
    baseline = experiments[0]
    # two seeds of its own; a drift rerun (calibrations 5% apart, which tiny runs can be) adds more
    own = [run for run in baseline.measured_runs if run.start.batch is None]
    assert baseline.decision.verdict == "baseline" and len(own) == 2
    assert all(0.5 < bpb < 9 for bpb in baseline.bpbs)
    for experiment in experiments:
        page = tiny_workspace / "notes" / "experiments" / f"{experiment.id}.md"
        assert page.is_file()
        if experiment.measured_runs:
            text = page.read_text(encoding="utf-8")
            prompts = {s.prompt for run in experiment.measured_runs for s in run.evaluation.samples}
            assert any(f"**{prompt}**" in text for prompt in prompts), "no sample story on the page"
    assert list((tiny_workspace / "notes" / "figures").glob("*.png"))
    log = subprocess.run(
        ["git", "log", "--format=%s%n%b"], cwd=tiny_workspace, capture_output=True, text=True
    ).stdout
    for experiment in experiments:
        assert f"Vibe-Experiment: {experiment.id}" in log
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=tiny_workspace, capture_output=True, text=True
        ).stdout
        == ""
    )
    status = vibe(tiny_workspace, "status", "--json", timeout=60)
    rows = json.loads(status.stdout)
    ids = [row["experiment"] for row in (rows["leaderboard"] if isinstance(rows, dict) else rows)]
    assert set(ids) == {e.id for e in experiments}
    # every experiment that became the best was scored once on the sealed test split
    readme = (tiny_workspace / "notes" / "README.md").read_text(encoding="utf-8")
    assert baseline.test_bpbs and len(baseline.test_bpbs) == len(baseline.bpbs)
    assert "sealed test split" in readme and state.best_experiment.test_bpbs
    overhead = [record for e in experiments for record in e.overhead]
    assert len(overhead) == 4 and all(record.turn_s > 0 for record in overhead)


def test_a_manual_change_that_cannot_train_fails_at_the_smoke_run(tiny_workspace: Path) -> None:
    """--manual spends no timed run on a change that crashes, as a proposal would not; the change
    stays in git history under the commit the tool made of it."""
    train_py = tiny_workspace / "experiments" / "train.py"
    train_py.write_text(
        'raise SystemExit("my edit broke it")\n' + train_py.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    done = vibe(tiny_workspace, "continue", "--manual", "my broken edit")
    assert "smoke run" in done.stderr and "my edit broke it" in done.stderr, done.stderr[-3000:]
    state = rebuild_state(read(tiny_workspace / "notes" / "ledger.jsonl").records)
    [experiment] = state.experiments.values()
    assert experiment.decision.verdict == "failed"
    assert experiment.decision.reason.startswith("the smoke run failed")
    assert experiment.runs == {}  # the two timed runs were never started
    shown = subprocess.run(
        ["git", "show", f"{experiment.proposal.commit}:experiments/train.py"],
        cwd=tiny_workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.startswith('raise SystemExit("my edit broke it")')


def test_a_baseline_that_crashes_is_recorded_and_nothing_is_reverted(tiny_workspace: Path) -> None:
    train_py = tiny_workspace / "experiments" / "train.py"
    train_py.write_text(
        'raise SystemExit("this trainer is broken")\n' + train_py.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    subprocess.run(["git", "commit", "-qam", "a broken trainer"], cwd=tiny_workspace, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tiny_workspace, capture_output=True, text=True
    ).stdout
    done = vibe(tiny_workspace, "continue", "--auto", "1")
    assert done.returncode == 2, done.stderr[-3000:]
    assert (
        "the baseline failed" in done.stderr.splitlines()[-1]
        and "this trainer is broken" in done.stderr
    )
    state = rebuild_state(read(tiny_workspace / "notes" / "ledger.jsonl").records)
    baseline = next(iter(state.experiments.values()))
    assert (
        baseline.decision.verdict == "failed"
        and "this trainer is broken" in baseline.decision.reason
    )
    assert len(state.experiments) == 1  # no change is proposed on top of a baseline that never ran
    log = subprocess.run(
        ["git", "log", "--format=%s", f"{head.strip()}..HEAD"],
        cwd=tiny_workspace,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert log and all(subject.startswith("Notes:") for subject in log)
    assert (
        subprocess.run(
            ["git", "diff", head.strip(), "--", "experiments/"],
            cwd=tiny_workspace,
            capture_output=True,
            text=True,
        ).stdout
        == ""
    )
