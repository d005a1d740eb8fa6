"""The machine drift guard: under a wall-clock budget a busier machine gives fewer tokens and a
worse bpb, so two sides measured at different speeds are not compared as they are.

Every run records a calibration (runs/calibrate.py: a fixed micro-benchmark before it trains,
and the load average). When the medians of a candidate's and its reference's calibrations differ
by more than `research.drift` (5% by default), the reference's code is checked out into a
worktree under .vibe/ and the two are run again side by side, alternating (reference, candidate,
reference, ...), as one batch; the decision then compares that batch on both sides, and the page
says so.
"""

import logging
import subprocess
from pathlib import Path
from statistics import median

from vibe_research.research.loop.env import Env
from vibe_research.research.loop.runs import run_planned
from vibe_research.research.state.experiments import ExperimentState, RunState
from vibe_research.research.state.ledger import PlannedRun

log = logging.getLogger(__name__)


def speed(runs: list[RunState]) -> float | None:
    """Median calibration (GFLOP/s) of the runs that recorded one."""
    scores = [run.end.calibration.gflops for run in runs if run.end and run.end.calibration]
    return median(scores) if scores else None


def drift(candidate: ExperimentState, reference: ExperimentState, threshold: float) -> float | None:
    """Candidate's machine speed over the reference's, when both recorded one and they differ
    by more than `threshold` (relative); None otherwise."""
    mine, theirs = speed(candidate.chosen_runs), speed(reference.chosen_runs)
    if mine is None or theirs is None or theirs <= 0:
        return None
    ratio = mine / theirs
    return ratio if abs(ratio - 1) > threshold else None


def batch_name(experiment: str) -> str:
    return f"beside-{experiment.split('-', 1)[0]}"


def rerunnable(reference: ExperimentState, candidate: ExperimentState) -> bool:
    """The reference has code to check out and trains the same entry as the candidate."""
    return reference.code_commit is not None and reference.entry == candidate.entry


def rerun_beside(env: Env, candidate: ExperimentState, reference: ExperimentState) -> str:
    """runs_per_proposal pairs, alternating reference and candidate, as one batch; its name."""
    batch = batch_name(candidate.id)
    assert reference.code_commit is not None
    tree = worktree(env, reference.code_commit)
    seeds = env.seeds()
    env.ui.say(
        f"[{candidate.id}] the machine's speed changed between the two sides: running "
        f"{reference.id} and {candidate.id} again, alternating, {len(seeds)} pairs"
    )
    for seed in seeds:
        for side, workspace in ((reference, tree), (candidate, None)):
            overrides = (
                dict(side.chosen_runs[0].start.overrides)
                if side.chosen_runs and side.chosen_runs[0].start
                else {}
            )
            run_planned(
                env,
                side.id,
                side.entry,
                [PlannedRun(seed=seed, overrides=overrides)],
                side.code_commit,
                batch=batch,
                workspace=workspace,
            )
    return batch


def worktree(env: Env, commit: str) -> Path:
    """A checkout of `commit` under .vibe/worktrees (machine state; the researcher's working tree
    is never touched), made once per commit."""
    folder = env.workspace.state / "worktrees" / commit[:12]
    if not (folder / "experiments").is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--force", "--detach", str(folder), commit],
            cwd=env.root,
            check=True,
            capture_output=True,
        )
    return folder
