"""The run phase of a turn: an experiment's planned runs as specs, their token caches, the smoke
run, the timed runs (each trained and evaluated by the runner), and their records.

Every run is recorded when it starts and when it ends, so a turn killed at any point is resumed
from the ledger: runs already recorded are never run again, runs started and not recorded are
found in their run folders (adopt_finished) or run again (missing_runs).
"""

import logging
from pathlib import Path

from vibe_research.lm.caches import caches_ready, prepare_caches
from vibe_research.research.loop.env import Env
from vibe_research.research.propose.apply import tokenizer_problem
from vibe_research.research.state.experiments import ExperimentState
from vibe_research.research.state.ledger import (
    EvaluationRecord,
    PlannedRun,
    RunEndRecord,
    RunStartRecord,
    Sample,
    loss_points,
)
from vibe_research.runs.leftovers import kill_leftovers
from vibe_research.runs.result import RunResult
from vibe_research.runs.runner import RunFailed
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
    """Each spec with the tokenizer its run reads, whose token caches are built first if missing.

    Asked once per distinct entry and overrides (the executor's tokenizer_of); a spec whose entry
    cannot say keeps no tokenizer, and its run records why.
    """
    known: dict[tuple[str, tuple], str | None] = {}
    ready = []
    for spec in specs:
        key = (spec.entry, tuple(sorted(spec.overrides.items())))
        if key not in known:
            try:
                known[key] = env.executor.tokenizer_of(spec)
            except RunFailed as failed:
                log.debug("describe failed (%s); the run will record why", failed.reason)
                known[key] = None
            tokenizer = known[key]
            if tokenizer is not None and (problem := tokenizer_problem(tokenizer)):
                # the run finds no cache and records why; nothing is built outside the sandbox
                env.ui.say(f"not building token caches for {spec.entry}: {problem}")
            elif tokenizer is not None and not caches_ready(env.workspace.cache, tokenizer):
                env.ui.say(f"building the {tokenizer} token caches")
                prepare_caches(env.settings.data, env.root, env.workspace.cache, tokenizer)
        ready.append(spec.model_copy(update={"tokenizer": known[key]}))
    return ready


def smoke(env: Env, entry: str, run: PlannedRun) -> str | None:
    """`run` in the sandbox, told the full budget (so it makes the same choices, and a compiled
    model compiles here, warming the cache the timed seeds then read) and stopped after its first
    step, or at smoke_budget_s; then loaded and scored. The error text, or None if all went well.
    Ctrl-C raises KeyboardInterrupt."""
    cap = env.settings.train.smoke_budget_s
    specs = [
        spec.model_copy(update={"stop_after_steps": 1, "stop_after_s": cap})
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
    prefix = experiment.split("-", 1)[0]
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
