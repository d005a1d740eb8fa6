"""One turn of the research loop: propose, apply, smoke-run, run, evaluate, judge, decide, record.

Every step writes the ledger before it moves on, so a turn killed at any point is resumed by
the next `continue` from the ledger alone (see research/recovery.py): runs already recorded are
never run again, runs that were started and not recorded are found in their run folders or rerun.
"""

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Protocol

from vibe_research.llm.proposer import Proposer
from vibe_research.llm.schemas import Proposal, Suggestion, Tried
from vibe_research.research import gitops, ledger
from vibe_research.research.judge.cache import JudgeCache
from vibe_research.research.judge.scoring import Judge, pairwise, score_samples
from vibe_research.research.ledger import (
    DEFAULT_ENTRY,
    DecisionRecord,
    EvaluationRecord,
    JudgementRecord,
    PlannedRun,
    Record,
    RunEndRecord,
    RunStartRecord,
    Sample,
    loss_points,
)
from vibe_research.research.state import (
    ExperimentState,
    ResearchState,
    compare_with_best,
    rebuild_state,
)
from vibe_research.runs.events import OnEvent
from vibe_research.runs.executor import Executor
from vibe_research.runs.result import RunResult
from vibe_research.runs.spec import RunSpec
from vibe_research.settings import Settings
from vibe_research.workspace import Workspace

log = logging.getLogger(__name__)


class TurnUI(Protocol):
    """How a turn talks to the person: short lines, and live progress around a batch of runs."""

    def say(self, text: str) -> None: ...

    def progress(self, specs: list[RunSpec]) -> AbstractContextManager[OnEvent]: ...


class Interrupted(Exception):
    """Ctrl-C stopped the runs; what finished is recorded and the experiment stays open."""


@dataclass
class Stopwatch:
    """Seconds per phase; `training` and `evaluation` are the turn's work, the rest is overhead."""

    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=perf_counter)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + perf_counter() - start

    def overhead(self) -> dict[str, float]:
        return {name: round(s, 3) for name, s in self.seconds.items() if name != "runs"}

    def total(self) -> float:
        return perf_counter() - self.started


@dataclass
class Env:
    """Everything a turn needs, made once per `continue`."""

    workspace: Workspace
    settings: Settings
    executor: Executor
    proposer: Proposer
    judge: Judge
    judge_cache: JudgeCache
    ui: TurnUI
    watch: Stopwatch = field(default_factory=Stopwatch)

    @property
    def root(self) -> Path:
        return self.workspace.root

    def record(self, record: Record) -> None:
        ledger.append(self.workspace.ledger, record)

    def state(self) -> ResearchState:
        return rebuild_state(ledger.read(self.workspace.ledger).records)

    def seeds(self, count: int | None = None, after: list[int] | None = None) -> list[int]:
        """`count` seeds (default runs_per_proposal) from train.first_seed, skipping those in `after`."""
        wanted = count or self.settings.train.runs_per_proposal
        used = set(after or [])
        seeds, seed = [], self.settings.train.first_seed
        while len(seeds) < wanted:
            if seed not in used:
                seeds.append(seed)
            seed += 1
        return seeds


def history(state: ResearchState) -> list[Tried]:
    """Every experiment as the proposer sees it: title, move, verdict and bpb change."""
    tried = []
    for experiment in state.experiments.values():
        if experiment.proposal is None or experiment.proposal.source == "baseline":
            continue
        decision = experiment.decision
        bpb = _mean(experiment.bpbs)
        reference = state.reference(experiment.id)
        reference_bpb = _mean(reference.bpbs) if reference else None
        delta = None
        if decision and decision.comparison and decision.comparison.bpb:
            delta = decision.comparison.bpb.diff
        elif bpb is not None and reference_bpb is not None:
            delta = bpb - reference_bpb
        tried.append(
            Tried(
                title=experiment.title,
                verdict=decision.verdict if decision else "unfinished",
                move=experiment.proposal.move,
                delta_bpb=delta,
            )
        )
    return tried


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def best_run_dir(env: Env, state: ResearchState) -> str | None:
    """Run folder of the best run of the trainer's current experiment (the base of a fusion)."""
    current = state.current_for(env.settings.train.entry)
    candidates = [run for run in current.chosen_runs if run.evaluation] if current else []
    if not candidates:
        return None
    run = min(candidates, key=lambda r: r.evaluation.bpb if r.evaluation else float("inf"))
    return str(env.workspace.runs / run.run)


# ----- runs ---------------------------------------------------------------------------------


def make_specs(
    env: Env,
    experiment: str,
    entry: str,
    planned: list[PlannedRun],
    budget_s: float | None = None,
    samples: int | None = None,
    evaluate: bool = True,
) -> list[RunSpec]:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    number = experiment.split("-", 1)[0]
    return [
        RunSpec(
            run_id=f"{number}-{stamp}-s{run.seed}-{index}",
            workspace=env.root,
            entry=entry,
            seed=run.seed,
            budget_s=budget_s or env.settings.train.budget_s,
            overrides=dict(run.overrides),
            run_dir=env.workspace.runs / f"{number}-{stamp}-s{run.seed}-{index}",
            cache_dir=env.workspace.cache,
            samples=env.settings.judge.samples_per_run if samples is None else samples,
            evaluate=evaluate,
        )
        for index, run in enumerate(planned)
    ]


def execute(env: Env, experiment: str, specs: list[RunSpec], commit: str | None) -> list[RunResult]:
    """Record each run's start, run them all with live progress, record each end and evaluation."""
    for spec in specs:
        env.record(
            RunStartRecord(
                experiment=experiment,
                run=spec.run_id,
                seed=spec.seed,
                overrides=spec.overrides,
                budget_s=spec.budget_s,
                commit=commit,
            )
        )
    with env.watch.phase("runs"), env.ui.progress(specs) as on_event:
        results = env.executor.execute(specs, on_event)
    for result in results:
        record_result(env, experiment, result)
    if any(result.outcome == "interrupted" for result in results):
        raise Interrupted(f"{experiment}: runs stopped by Ctrl-C")
    return results


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


# ----- judging and deciding -------------------------------------------------------------------


def judge_runs(env: Env, experiment: ExperimentState, best: ExperimentState | None) -> None:
    """Score every measured, not yet judged run's samples; pairwise against the reference's samples."""
    best_samples = (
        [s for run in best.chosen_runs if run.evaluation for s in run.evaluation.samples]
        if best
        else []
    )
    with env.watch.phase("judging"):
        for run in experiment.measured_runs:
            if run.judgement is not None or run.evaluation is None or not run.evaluation.samples:
                continue
            scores = score_samples(env.judge, run.evaluation.samples, env.judge_cache)
            versus = None
            if (
                env.settings.judge.pairwise
                and best is not None
                and best.id != experiment.id
                and best_samples
            ):
                versus = pairwise(
                    env.judge,
                    run.evaluation.samples,
                    best_samples,
                    best.id,
                    env.judge_cache,
                    env.settings.research.confidence,
                )
            env.record(
                JudgementRecord(
                    experiment=experiment.id,
                    run=run.run,
                    judge=env.judge.name,
                    rubric_version=env.judge.rubric_version,
                    scores=scores,
                    pairwise=versus,
                )
            )


def decide(env: Env, experiment_id: str, by_researcher: bool | None = None) -> DecisionRecord:
    """Compare with the reference, keep (tag) or discard (revert), and record the decision.

    `by_researcher` True/False overrides the verdict (the menu's k and d); None follows it.
    """
    state = env.state()
    experiment = state.experiments[experiment_id]
    best = state.reference(experiment_id)
    proposal = experiment.proposal
    assert proposal is not None, f"{experiment_id} has no proposal record"
    with env.watch.phase("deciding"):
        if proposal.source == "baseline":
            verdict, comparison, reason = (
                ("baseline", None, "the baseline every later experiment is compared with")
                if experiment.bpbs
                else ("failed", None, _failure_reason(experiment))
            )
        elif not experiment.bpbs:
            verdict, comparison, reason = "failed", None, _failure_reason(experiment)
        elif best is None:
            verdict, comparison, reason = (
                "better",
                None,
                "no measured best to compare with: this becomes the best",
            )
        else:
            comparison = compare_with_best(
                state,
                experiment_id,
                env.settings.research.objective,
                env.settings.research.confidence,
            )
            assert comparison is not None
            verdict, reason = comparison.verdict, comparison.reason
        keep = verdict in ("better", "baseline") if by_researcher is None else by_researcher
        commit, tag = _apply_decision(env, experiment, keep, verdict, reason)
        decision = DecisionRecord(
            experiment=experiment_id,
            verdict=verdict,
            kept=keep,
            by="auto" if by_researcher is None else "researcher",
            against=best.id if best else None,
            comparison=comparison,
            reason=reason,
            commit=commit,
            tag=tag,
        )
        env.record(decision)
    return decision


def _failure_reason(experiment: ExperimentState) -> str:
    ends = [run.end for run in experiment.runs.values() if run.end]
    if not ends:
        return "no run finished"
    return "no run was measured: " + "; ".join(
        sorted({f"{end.outcome}: {end.reason}"[:200] for end in ends})
    )


def _reverts(env: Env, experiment: ExperimentState) -> list[gitops.TrailerCommit]:
    return [
        c for c in gitops.commits_for(env.root, experiment.id) if c.subject.startswith("Revert ")
    ]


def _apply_decision(
    env: Env, experiment: ExperimentState, keep: bool, verdict: str, reason: str
) -> tuple[str | None, str | None]:
    """Make the code match the decision: revert a discarded change, restore a kept one, tag a best."""
    proposal = experiment.proposal
    if proposal is None or proposal.commit is None:
        return None, None
    if proposal.source == "baseline":
        # the baseline changed nothing: its commit is where the workspace stood, never reverted
        with env.watch.phase("git"):
            tag = (
                gitops.tag_best(
                    env.root, experiment.id, proposal.commit, f"{experiment.id}: {reason}"[:200]
                )
                if keep
                else None
            )
        return None, tag
    with env.watch.phase("git"):
        reverts = _reverts(env, experiment)
        applied = len(reverts) % 2 == 0
        commit = None
        if keep and not applied:
            commit = gitops.revert(
                env.root, reverts[-1].sha, experiment.id, "kept", "the change is restored"
            )
        elif not keep and applied:
            commit = gitops.revert(env.root, proposal.commit, experiment.id, verdict, reason)
        tag = None
        if keep:
            tag = gitops.tag_best(
                env.root,
                experiment.id,
                commit or gitops.head(env.root),
                f"{experiment.id}: {reason}"[:200],
            )
    return commit, tag


# ----- proposals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Direction:
    """What the next experiment answers: the researcher's pick, own idea, or the top suggestion."""

    pick: Suggestion | None = None
    idea: str | None = None


def planned_runs(proposal: Proposal, seeds: list[int]) -> tuple[str, list[PlannedRun]]:
    """The proposal's runs as (entry, runs); one entry per proposal, the settings' seeds by default."""
    entries = {request.entry or DEFAULT_ENTRY for request in proposal.runs}
    entry = sorted(entries)[0]
    if len(entries) > 1:
        log.warning(
            "proposal names several entries (%s); running %s only",
            ", ".join(sorted(entries)),
            entry,
        )
    runs = [
        PlannedRun(seed=seed, overrides={k: str(v) for k, v in request.overrides.items()})
        for request in proposal.runs
        if (request.entry or DEFAULT_ENTRY) == entry
        for seed in request.seeds
    ]
    if not runs:
        runs = [PlannedRun(seed=seed) for seed in seeds]
    return entry, runs
