"""The judge and decide phases of a turn: score the stories, compare with the reference, keep or
discard, and make experiments/ match. `decide` is the one place a decision is recorded: the
statistics' verdict, a failure, the baseline, and the researcher's keep or discard all pass here.
"""

import logging

from vibe_research.research import gitops
from vibe_research.research.judge.scoring import pairwise, score_samples
from vibe_research.research.loop.drift import batch_name
from vibe_research.research.loop.env import Env
from vibe_research.research.state.experiments import (
    ExperimentState,
    RunState,
    compare_with_best,
    gain_split,
)
from vibe_research.research.state.ledger import (
    DecisionRecord,
    JudgementRecord,
    Sample,
    judge_identity,
)
from vibe_research.research.stats import Comparison

log = logging.getLogger(__name__)


def judge_identity_of(env: Env) -> str:
    return judge_identity(env.judge.name, env.judge.rubric_version)


def judge_runs(env: Env, experiment: ExperimentState, reference: ExperimentState | None) -> None:
    """Score the stories of every measured run the current judge has not judged; the reference's
    chosen runs too, so a comparison has one judge on both sides (answers are cached by judge
    identity, so a run is never judged twice by the same judge). Pairwise against the reference."""
    identity = judge_identity_of(env)
    reference_samples = (
        [s for run in reference.chosen_runs if run.evaluation for s in run.evaluation.samples]
        if reference
        else []
    )
    with env.watch.phase("judging"):
        if reference is not None:
            for run in reference.chosen_runs:
                _judge_run(env, reference.id, run, identity, None, [])
        for run in experiment.measured_runs:
            _judge_run(env, experiment.id, run, identity, reference, reference_samples)


def _judge_run(
    env: Env,
    experiment: str,
    run: RunState,
    identity: str,
    reference: ExperimentState | None,
    reference_samples: list[Sample],
) -> None:
    if (
        run.judgement_by(identity) is not None
        or run.evaluation is None
        or not run.evaluation.samples
    ):
        return
    scores = score_samples(env.judge, run.evaluation.samples, env.judge_cache)
    versus = None
    if env.settings.judge.pairwise and reference is not None and reference_samples:
        versus = pairwise(
            env.judge,
            run.evaluation.samples,
            reference_samples,
            reference.id,
            env.judge_cache,
            env.settings.research.confidence,
        )
    env.record(
        JudgementRecord(
            experiment=experiment,
            run=run.run,
            judge=env.judge.name,
            rubric_version=env.judge.rubric_version,
            scores=scores,
            pairwise=versus,
        )
    )


def decide(
    env: Env,
    experiment_id: str,
    override: bool | None = None,
    failure: str | None = None,
    drift: str = "",
) -> DecisionRecord:
    """Decide `experiment_id`, make the code match, and record the decision.

    `failure` says why it could not be measured at all (a proposal that did not apply or smoke-run,
    an LLM that gave no proposal); `override` True/False is the researcher's keep or discard, which
    keeps the verdict already reached and changes only what is done about it. `drift` says the
    sides ran at different machine speeds (loop/drift.py) and what was done about it.
    """
    state = env.state()
    experiment = state.experiments[experiment_id]
    with env.watch.phase("deciding"):
        if override is not None and experiment.decision is not None:
            earlier = experiment.decision
            verdict, comparison, reason = earlier.verdict, earlier.comparison, earlier.reason
            against, gain, drift = earlier.against, earlier.gain, earlier.drift
        else:
            reference = state.reference(experiment_id)
            against = reference.id if reference else None
            verdict, comparison, reason = _verdict(env, experiment, failure)
            gain = (
                gain_split(state, experiment_id, _batch(experiment))
                if comparison is not None
                else None
            )
        keep = verdict in ("better", "baseline") if override is None else override
        commit, tag = _make_code_match(env, experiment, keep, verdict, reason)
        decision = DecisionRecord(
            experiment=experiment_id,
            verdict=verdict,
            kept=keep,
            by="auto" if override is None else "researcher",
            against=against,
            comparison=comparison,
            gain=gain,
            drift=drift,
            reason=reason,
            commit=commit,
            tag=tag,
        )
        env.record(decision)
    return decision


def _verdict(
    env: Env, experiment: ExperimentState, failure: str | None
) -> tuple[str, Comparison | None, str]:
    state = env.state()
    proposal = experiment.proposal
    if failure is not None:
        return "failed", None, failure
    if not experiment.bpbs:
        return "failed", None, _failure_reason(experiment)
    if proposal is not None and proposal.source == "baseline":
        return "baseline", None, "the baseline every later experiment is compared with"
    comparison = compare_with_best(
        state,
        experiment.id,
        env.settings.research.objective,
        env.settings.research.confidence,
        judge=judge_identity_of(env),
        batch=_batch(experiment),
    )
    if comparison is None:
        return "better", None, "no measured best to compare with: this becomes the best"
    return comparison.verdict, comparison, comparison.reason


def _batch(experiment: ExperimentState) -> str | None:
    """The side-by-side batch a drift rerun made for this experiment: what its verdict compares."""
    batch = batch_name(experiment.id)
    return batch if batch in experiment.batches else None


def _failure_reason(experiment: ExperimentState) -> str:
    ends = [run.end for run in experiment.runs.values() if run.end]
    if not ends:
        return "no run finished"
    return "no run was measured: " + "; ".join(
        sorted({f"{end.outcome}: {end.reason}"[:200] for end in ends})
    )


def _make_code_match(
    env: Env, experiment: ExperimentState, keep: bool, verdict: str, reason: str
) -> tuple[str | None, str | None]:
    """Revert a discarded change, restore a kept one that was out, tag a kept best; the commit
    made (if any) and the tag. Whether the change is in place comes from the ledger."""
    proposal = experiment.proposal
    if proposal is None or proposal.commit is None:
        return None, None
    summary = f"{experiment.id}: {reason}"[:200]
    if proposal.source == "baseline":
        # the baseline changed nothing: its commit is where the workspace stood, never reverted
        with env.watch.phase("git"):
            tag = (
                gitops.tag_best(env.root, experiment.id, proposal.commit, summary) if keep else None
            )
        return None, tag
    with env.watch.phase("git"):
        commit = None
        if keep and not experiment.applied:
            discard = experiment.discard_commit
            assert discard is not None, f"{experiment.id} is out of experiments/ without a revert"
            commit = gitops.revert(
                env.root, discard, experiment.id, "kept", "the change is restored"
            )
        elif not keep and experiment.applied:
            code = experiment.code_commit
            assert code is not None
            commit = gitops.revert(env.root, code, experiment.id, verdict, reason)
        tag = None
        if keep:
            tag = gitops.tag_best(
                env.root, experiment.id, commit or experiment.code_commit, summary
            )
    return commit, tag
