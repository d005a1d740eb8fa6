"""The machine drift guard: under a wall-clock budget a busier machine gives fewer tokens and a
worse bpb, so two sides measured at different speeds are not compared as they are.

Every run records a calibration (runs/calibrate.py: a fixed micro-benchmark before it trains,
and the load average). Two sides whose speeds differ by more than `research.drift` (5% by
default) are run side by side, alternating (reference, candidate, reference, ...), as one batch,
from the reference's code checked out into a worktree under .vibe/; the decision then compares
that batch on both sides, and the page says so. The speed is looked at twice:

- before a candidate's first run, measured now (`starts_beside`): when it already differs from
  the reference's runs, the candidate's runs are that batch from the start, rather than run
  alone, found to differ, and run again;
- after its runs, from their own calibrations (turn.check_drift), for a machine that changed
  speed while they ran.

A batch a stopped turn left half-run is completed when the turn resumes (`rerun_beside` runs
only the pairs it lacks).
"""

import logging
import shutil
import subprocess
from pathlib import Path
from statistics import median

from vibe_research.research.loop.env import Env
from vibe_research.research.loop.runs import make_specs, run_planned
from vibe_research.research.state.experiments import ExperimentState, ResearchState, RunState
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


def not_rerunnable(reference: ExperimentState, candidate: ExperimentState) -> str:
    """Why the reference cannot run again beside the candidate, or "" when it can: it needs code
    of its own to check out and the candidate's entry."""
    if reference.code_commit is None:
        return "the reference has no code of its own to check out"
    if reference.entry != candidate.entry:
        return (
            f"{candidate.id} runs {candidate.entry} and {reference.id} {reference.entry}, so "
            "there is no run of the reference to pair with each of its runs"
        )
    return ""


def starts_beside(
    env: Env, candidate: ExperimentState, reference: ExperimentState | None, todo: list[PlannedRun]
) -> bool:
    """Before the candidate's first run: whether the machine's speed now (measured as a run
    measures it) differs from its reference's runs by more than `research.drift`, so that its
    `todo` runs should be the side-by-side batch from the start. Never for a sweep (which of its
    settings is compared is known only after its runs), nor where the executor cannot measure
    the machine the runs will get (Ray)."""
    if reference is None or candidate.runs or not_rerunnable(reference, candidate):
        return False
    if len({tuple(sorted(run.overrides.items())) for run in todo}) != 1:
        return False
    theirs = speed(reference.chosen_runs)
    if theirs is None:
        return False
    spec = make_specs(env, "speed", candidate.entry, todo[:1], samples=0)[0]
    with env.watch.phase("calibrate"):
        now = env.executor.calibrate(spec)
    shutil.rmtree(spec.run_dir, ignore_errors=True)
    if now is None:
        return False
    log.info(
        "%s: the machine at %.1f GFLOP/s, %s's runs at %.1f",
        candidate.id,
        now.gflops,
        reference.id,
        theirs,
    )
    return abs(now.gflops / theirs - 1) > env.settings.research.drift


def rerun_beside(
    env: Env,
    candidate: ExperimentState,
    reference: ExperimentState,
    planned: list[PlannedRun] | None = None,
) -> str:
    """The candidate's `planned` runs (default: one per seed of its proposal, with the overrides
    its chosen runs used), each after a reference run of the same seed, alternating, as one
    batch; a run the batch already has (a resumed turn) is not run again. The batch's name."""
    batch = batch_name(candidate.id)
    assert reference.code_commit is not None
    state = env.state()
    candidate, reference = state.experiments[candidate.id], state.experiments[reference.id]
    if planned is None:
        overrides = _overrides_of(candidate)
        seeds = sorted({run.seed for run in candidate.proposal.runs}) if candidate.proposal else []
        planned = [PlannedRun(seed=seed, overrides=overrides) for seed in seeds or env.seeds()]
    todo = pairs_to_run(candidate, reference, planned)
    if not todo:
        return batch
    tree = worktree(env, reference.code_commit)
    env.ui.say(
        f"[{candidate.id}] running {reference.id} and {candidate.id} side by side, alternating, "
        f"{len(planned)} pairs (the machine's speed differs from {reference.id}'s runs)"
    )
    for side, run in todo:
        run_planned(
            env,
            side.id,
            side.entry,
            [run],
            side.code_commit,
            batch=batch,
            workspace=tree if side.id == reference.id else None,
        )
    return batch


def pairs_to_run(
    candidate: ExperimentState, reference: ExperimentState, planned: list[PlannedRun]
) -> list[tuple[ExperimentState, PlannedRun]]:
    """The side-by-side batch of `planned` in the order it runs, a reference run (with the
    overrides its chosen runs used) before each candidate run of the same seed, less the runs of
    it already finished."""
    batch = batch_name(candidate.id)
    reference_overrides = _overrides_of(reference)
    return [
        (side, PlannedRun(seed=run.seed, overrides=overrides))
        for run in planned
        for side, overrides in ((reference, reference_overrides), (candidate, run.overrides))
        if run.seed not in _seeds_in(side, batch)
    ]


def described(state: ResearchState, experiment: str) -> str:
    """What the page says about a side-by-side batch of `experiment` and its reference."""
    candidate, reference = state.experiments[experiment], state.reference(experiment)
    assert reference is not None
    batch = batch_name(experiment)
    before = [run for run in reference.chosen_runs if run.start and run.start.batch != batch]
    alone = [run for run in candidate.chosen_runs if run.start and run.start.batch != batch]
    paired = (
        f"alternating (calibration {_gflops(candidate.runs_of(batch))} against "
        f"{_gflops(reference.runs_of(batch))} GFLOP/s), and the verdict compares those runs"
    )
    if alone:
        mine, theirs = speed(alone), speed(before)
        ratio = f"{mine / theirs:.0%}" if mine and theirs else "another"
        return (
            f"its runs ran at {ratio} of the machine speed of {reference.id}'s ({_gflops(alone)} "
            f"against {_gflops(before)} GFLOP/s in the calibration before each run); both were "
            f"run again side by side, {paired}"
        )
    return (
        f"the machine's speed when this experiment began differed from that of {reference.id}'s "
        f"runs ({_gflops(before)} GFLOP/s in the calibration before each of those), so both were "
        f"run side by side from the start, {paired}"
    )


def _overrides_of(side: ExperimentState) -> dict[str, str]:
    first = side.chosen_runs[0].start if side.chosen_runs else None
    return dict(first.overrides) if first else {}


def _seeds_in(side: ExperimentState, batch: str) -> set[int]:
    return {
        run.start.seed
        for run in side.runs.values()
        if run.start and run.start.batch == batch and run.end and run.end.outcome != "interrupted"
    }


def _gflops(runs: list[RunState]) -> str:
    measured = speed(runs)
    return "?" if measured is None else f"{measured:.1f}"


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
