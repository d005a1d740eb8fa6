"""The run phase of a turn: an experiment's planned runs as specs, their token caches, the smoke
run, the timed runs (each trained and evaluated by the runner), and their records.

Every run is recorded when it starts and when it ends, so a turn killed at any point is resumed
from the ledger: runs already recorded are never run again, runs started and not recorded are
found in their run folders (adopt_finished) or run again (missing_runs).
"""

import logging
from pathlib import Path

from vibe_research.lm.caches import prepare_caches, sealed_ready
from vibe_research.lm.corpus import has_test_split
from vibe_research.research.loop.env import Env
from vibe_research.research.state.experiments import ExperimentState
from vibe_research.research.state.ledger import (
    EvaluationRecord,
    PlannedRun,
    RunEndRecord,
    RunStartRecord,
    Sample,
    SealedRejectedRecord,
    SealedScoreRecord,
    loss_points,
)
from vibe_research.runs.executor import with_tokens as ready_tokens
from vibe_research.runs.leftovers import kill_leftovers
from vibe_research.runs.result import RunResult
from vibe_research.runs.spec import RunSpec, plan_runs

log = logging.getLogger(__name__)


def make_specs(
    env: Env,
    prefix: str,
    entry: str,
    planned: list[PlannedRun],
    samples: int | None = None,
    workspace: Path | None = None,
) -> list[RunSpec]:
    """One spec per planned run, named after `prefix` (the experiment's number, or `smoke`);
    `workspace` is where its code is (default: the workspace, as it stands)."""
    return plan_runs(
        workspace or env.root,
        env.workspace.runs,
        env.workspace.cache,
        entry,
        env.settings.train.budget_s,
        [(run.seed, dict(run.overrides)) for run in planned],
        prefix=prefix,
        samples=env.settings.judge.samples_per_run if samples is None else samples,
    )


def with_tokens(env: Env, specs: list[RunSpec]) -> list[RunSpec]:
    """`specs` with their tokenizers, the caches built where missing (runs.executor.with_tokens)."""
    return ready_tokens(
        env.executor, specs, env.settings.data, env.root, env.workspace.cache, env.ui.say
    )


def smoke(env: Env, entry: str, run: PlannedRun) -> str | None:
    """`run` in the sandbox, told the full budget (so it makes the same choices, and a compiled
    model compiles here, warming the cache the timed seeds then read) and stopped after its first
    step, or at smoke_budget_s; then loaded and scored. The error text, or None if all went well.
    Ctrl-C raises KeyboardInterrupt."""
    cap = env.settings.train.smoke_budget_s
    specs = [
        spec.model_copy(update={"stop_after_steps": 1, "stop_after_s": cap, "calibrate": False})
        for spec in make_specs(env, "smoke", entry, [run], samples=0)
    ]
    env.ui.say(f"smoke run: {entry} until its first step (at most {cap:g} s)")
    with env.watch.phase("smoke"):
        specs = with_tokens(env, specs)
        with env.ui.progress(specs) as on_event:
            result = env.executor.execute(specs, on_event)[0]
    if result.outcome == "interrupted":
        raise KeyboardInterrupt("smoke run stopped")
    if result.outcome == "ok":
        return None
    tail = result.log_tail[-3000:]
    return f"the smoke run ended {result.outcome}: {result.reason}\n--- log tail ---\n{tail}"


def run_planned(
    env: Env,
    experiment: str,
    entry: str,
    planned: list[PlannedRun],
    commit: str | None,
    batch: str | None = None,
    workspace: Path | None = None,
) -> None:
    """Run `planned` runs of `entry` for `experiment` (from the code in `workspace`, default the
    workspace itself); Ctrl-C raises KeyboardInterrupt once what finished is recorded."""
    prefix = experiment.split("-", 1)[0]  # run ids start with the experiment's number
    with env.watch.phase("data"):
        specs = with_tokens(env, make_specs(env, prefix, entry, planned, workspace=workspace))
    for spec in specs:
        env.record(
            RunStartRecord(
                experiment=experiment,
                run=spec.run_id,
                seed=spec.seed,
                overrides=spec.overrides,
                budget_s=spec.budget_s,
                commit=commit,
                batch=batch,
            )
        )
    with env.watch.phase("runs"), env.ui.progress(specs) as on_event:
        results = env.executor.execute(specs, on_event)
    for result in results:
        record_result(env, experiment, result)
    if any(result.outcome == "interrupted" for result in results):
        raise KeyboardInterrupt(f"{experiment}: runs stopped")


def record_result(env: Env, experiment: str, result: RunResult) -> None:
    summary = result.summary
    env.record(
        RunEndRecord(
            experiment=experiment,
            run=result.run_id,
            outcome=result.outcome,
            reason=result.reason,
            steps=summary.steps,
            tokens=summary.tokens,
            tokens_per_s=summary.tokens_per_s,
            params=summary.params,
            device=summary.device,
            elapsed_s=result.duration_s,
            loss_curve=loss_points(summary.loss_curve),
            # a failure's log tail goes to the notes and the next prompt; an ok run's stays in
            # its run folder
            log_tail=result.log_tail if result.outcome != "ok" else "",
            lm_fingerprint=result.lm_fingerprint,
            versions={"python": result.python, **({"torch": result.torch} if result.torch else {})},
            calibration=result.calibration,
        )
    )
    evaluation = result.evaluation
    if result.outcome == "ok" and evaluation and evaluation.ok and evaluation.bpb is not None:
        samples = [
            Sample(prompt=s.prompt, seed=s.seed, text=s.text, finished=s.finished)
            for s in evaluation.samples
        ]
        env.record(
            EvaluationRecord(
                experiment=experiment,
                run=result.run_id,
                bpb=evaluation.bpb,
                perplexity=evaluation.perplexity or float("nan"),
                tokenizer=evaluation.tokenizer or "?",
                samples=samples,
            )
        )


def adopt_finished(env: Env, experiment: ExperimentState) -> list[str]:
    """Runs started and never recorded (the orchestrator died): kill what they left running, and
    record those whose result.json exists."""
    adopted = []
    for run in experiment.runs.values():
        if run.end is not None:
            continue
        kill_leftovers(env.workspace.runs / run.run)
        result_file = env.workspace.runs / run.run / "result.json"
        if result_file.is_file():
            result = RunResult.model_validate_json(result_file.read_text(encoding="utf-8"))
            # an interrupted run is not a result: missing_runs plans it again
            if result.outcome != "interrupted":
                record_result(env, experiment.id, result)
                adopted.append(run.run)
    return adopted


def missing_runs(experiment: ExperimentState) -> list[PlannedRun]:
    """Planned runs of `experiment` with no finished run of the same seed and overrides."""
    proposal = experiment.proposal
    if proposal is None:
        return []
    done = [
        (r.start.seed, r.start.overrides)
        for r in experiment.runs.values()
        if r.start and r.end and r.end.outcome != "interrupted"
    ]
    return [planned for planned in proposal.runs if (planned.seed, planned.overrides) not in done]


def score_sealed(env: Env, experiment_id: str) -> None:
    """An experiment that has just become the best: its runs scored once on the sealed test split
    (where the data has one), recorded beside their valid numbers. Nothing decides by them."""
    experiment = env.state().experiments[experiment_id]
    runs = [
        run
        for run in experiment.chosen_runs
        if run.test is None and run.test_rejected is None and run.evaluation and run.start
    ]
    if not runs or not has_test_split(env.settings.data):
        return
    # a run trained on another machine (a fresh clone has no .vibe/runs) has no model to score
    gone = [run.run for run in runs if not (env.workspace.runs / run.run).is_dir()]
    if gone:
        env.ui.say(
            f"[{experiment_id}] no sealed test score for {', '.join(gone)}: "
            "no run folder on this machine (trained elsewhere, or the folder was removed)"
        )
    runs = [run for run in runs if run.run not in gone]
    if not runs:
        return
    with env.watch.phase("sealed test"):
        for run in runs:
            assert run.start is not None and run.evaluation is not None
            tokenizer = run.evaluation.tokenizer
            if not sealed_ready(env.workspace.cache, tokenizer):
                prepare_caches(env.settings.data, env.root, env.workspace.cache, tokenizer)
            spec = RunSpec(
                run_id=run.run,
                workspace=env.root,
                entry=experiment.entry,
                seed=run.start.seed,
                budget_s=run.start.budget_s,
                overrides=dict(run.start.overrides),
                run_dir=env.workspace.runs / run.run,
                cache_dir=env.workspace.cache,
                tokenizer=tokenizer,
                samples=0,
            )
            # the score lands outside the run folder, which the model's own process may write
            outcome, reason, result = env.executor.score_sealed(
                spec, env.workspace.state / "sealed" / run.run
            )
            if result is None or not result.ok or result.bpb is None:
                env.ui.say(
                    f"[{experiment_id}] {run.run}: no sealed test score ({outcome}: {reason})"
                )
                if outcome != "interrupted":  # stopped by the researcher: asked again next turn
                    env.record(
                        SealedRejectedRecord(
                            experiment=experiment_id,
                            run=run.run,
                            outcome=outcome,
                            reason=reason or "the evaluation gave no bpb",
                        )
                    )
                continue
            env.record(
                SealedScoreRecord(
                    experiment=experiment_id,
                    run=run.run,
                    bpb=result.bpb,
                    perplexity=result.perplexity or float("nan"),
                    tokens=result.tokens,
                    source=result.valid or "",
                )
            )
    state = env.state().experiments[experiment_id]
    scored = sum(1 for run in runs if state.runs[run.run].test is not None)
    env.ui.say(
        f"[{experiment_id}] the best: {scored} of {len(runs)} run(s) scored once on the sealed "
        "test split"
    )
