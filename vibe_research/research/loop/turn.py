"""One turn of the research loop, in the order it happens:

    start    what the turn begins with (start_of): an open experiment is finished first, a
             workspace with no baseline measures it, else what the researcher asked for
    propose  the proposer (an LLM or the offline planner) answers with a change and its runs
    apply    its search/replace edits on experiments/ (propose/edits.py)
    smoke    the changed entry trains one step and is scored, before the timed runs are spent
    commit   the files the edits wrote, one commit (gitops)
    run      the planned runs, each trained and then evaluated in the sandbox (loop/runs.py)
    judge    the stories the models wrote, scored (loop/decide.py)
    decide   against the reference: keep or discard, experiments/ made to match
    suggest  two or three next steps
    record   the turn's overhead, the notes rendered from the ledger and committed

Every step writes the ledger before the next begins, so a turn killed anywhere is finished by
the next `continue` from the ledger (start "resume"). Ctrl-C stops the turn: what finished is
recorded, a half-applied proposal is undone (loop/recovery.py), and KeyboardInterrupt goes on up.
"""

import logging
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal

from vibe_research.llm.errors import BudgetExceeded, ContextTooLong, LLMError
from vibe_research.llm.schemas import Proposal, Suggestion
from vibe_research.lm.errors import UserError
from vibe_research.research import gitops
from vibe_research.research.loop.decide import decide, judge_runs
from vibe_research.research.loop.drift import (
    batch_name,
    described,
    drift,
    not_rerunnable,
    rerun_beside,
    speed,
    starts_beside,
)
from vibe_research.research.loop.env import Env, Stopwatch
from vibe_research.research.loop.recovery import clear_pending, recover, save_pending
from vibe_research.research.loop.runs import (
    adopt_finished,
    missing_runs,
    run_planned,
    score_sealed,
    smoke,
)
from vibe_research.research.notes.render import check_notes, render_from_ledger
from vibe_research.research.propose.apply import Attempt, propose_and_apply
from vibe_research.research.propose.context import (
    base_runs,
    proposal_context,
    read_steering,
    run_folders,
    suggestion_context,
    tried,
)
from vibe_research.research.state.experiments import ExperimentState, ResearchState, names_run
from vibe_research.research.state.ledger import (
    DEFAULT_ENTRY,
    DecisionRecord,
    LLMFailureRecord,
    OverheadRecord,
    PlannedRun,
    ProposalRecord,
    SuggestionsRecord,
    experiment_id,
)

log = logging.getLogger(__name__)

StartKind = Literal["resume", "baseline", "propose", "manual", "rerun"]


@dataclass(frozen=True)
class Direction:
    """What a proposal answers: the researcher's pick, their own idea, or neither (the
    proposer's own choice)."""

    pick: Suggestion | None = None
    idea: str | None = None


@dataclass(frozen=True)
class Request:
    """What the researcher asked the turn to do."""

    kind: Literal["propose", "manual", "rerun"] = "propose"
    direction: Direction = field(default_factory=Direction)
    title: str = ""  # manual: the title of their change
    experiment: str | None = None  # rerun: which experiment
    extra_seeds: int = 0  # rerun: how many more seeds


@dataclass(frozen=True)
class Turn:
    """What a turn did: how it started, its experiment, and the decision (None: left open, to
    be finished by the next turn)."""

    start: StartKind
    experiment: str
    decision: DecisionRecord | None


def has_baseline(state: ResearchState) -> bool:
    """Whether a baseline was measured (a failed one does not count: the next turn measures again)."""
    return any(
        e.proposal
        and e.proposal.source == "baseline"
        and e.decision
        and e.decision.verdict == "baseline"
        for e in state.experiments.values()
    )


def start_of(state: ResearchState, request: Request) -> StartKind:
    """The one place that says what a turn begins with."""
    if state.open_experiment is not None:
        return "resume"
    if request.kind == "manual":
        return "manual"  # the researcher's uncommitted change is committed before anything runs
    if not has_baseline(state):
        return "baseline"
    return request.kind


def run_turn(env: Env, request: Request) -> Turn:
    """One whole turn (see the module doc). Raises KeyboardInterrupt after Ctrl-C, once what
    finished is recorded, and BudgetExceeded when the spend cap stops it."""
    env.watch = Stopwatch()
    start = start_of(env.state(), request)
    if start != "manual":
        # the researcher's own edits to committed experiment files would be measured as the
        # loop's: refused here, at every turn (DirtyExperiments says what to do)
        gitops.check_ready(env.root)
    check_notes(env.workspace)
    try:
        experiment = _BEGIN[start](env, request)
        if env.state().experiments[experiment].open:
            finish(env, experiment)
        suggest(env, experiment)
        record_turn(env, experiment)
    except (KeyboardInterrupt, BudgetExceeded):
        after_interruption(env)
        raise
    return Turn(start, experiment, env.state().experiments[experiment].decision)


# ----- the starts: each records the experiment's proposal, then the turn runs it ---------------


def begin_baseline(env: Env, request: Request) -> str:
    """Measure experiments/ as it stands: the reference of every later change."""
    state = env.state()
    entry = env.settings.train.entry
    exp = experiment_id(state.next_number, "baseline")
    env.record(
        ProposalRecord(
            experiment=exp,
            title="Baseline: experiments/ as it stands",
            source="baseline",
            hypothesis="The starting point every later change is measured against.",
            rationale="No experiment is recorded yet.",
            commit=gitops.head(env.root),
            entry=entry,
            runs=[PlannedRun(seed=seed) for seed in env.seeds()],
        )
    )
    runs, budget = env.settings.train.runs_per_proposal, env.settings.train.budget_s
    env.ui.say(f"[{exp}] measuring the baseline: {runs} runs of {entry}, {budget:g} s each")
    if (error := smoke(env, entry, PlannedRun(seed=env.seeds(1)[0]))) is not None:
        decide(env, exp, failure=f"the smoke run failed: {error}")
    return exp


def begin_manual(env: Env, request: Request) -> str:
    """The researcher's uncommitted changes to experiments/, committed and measured as an
    experiment; with no baseline yet, they are the baseline (what the workspace stands at)."""
    state = env.state()
    baseline = not has_baseline(state)
    title = f"Baseline: {request.title}" if baseline else request.title
    entry = env.settings.train.entry
    exp = experiment_id(state.next_number, "baseline" if baseline else request.title)
    with env.watch.phase("git"):
        commit = gitops.commit_manual(env.root, exp, title)
    env.record(
        ProposalRecord(
            experiment=exp,
            title=title,
            hypothesis="The researcher's own change.",
            source="baseline" if baseline else "manual",
            commit=commit,
            diff=gitops.diff_of(env.root, commit),
            entry=entry,
            runs=[PlannedRun(seed=seed) for seed in env.seeds()],
        )
    )
    env.ui.say(f"[{exp}] {title}: your change, committed as {commit[:8]}")
    # as for a proposal: a change that cannot train fails here, not in every timed run, and a
    # compiled model compiles here, so seed 0 does not pay the compile out of its budget
    if (error := smoke(env, entry, PlannedRun(seed=env.seeds(1)[0]))) is not None:
        decide(env, exp, failure=f"the smoke run failed: {error}")
    return exp


def begin_rerun(env: Env, request: Request) -> str:
    """More seeds of a decided experiment (the menu's r): its change back in place if it was
    discarded, the new seeds planned; the experiment is open again and decided anew."""
    assert request.experiment is not None
    experiment = env.state().experiments[request.experiment]
    proposal = experiment.proposal
    if proposal is None or (proposal.source == "baseline" and not experiment.bpbs):
        raise UserError(f"{request.experiment} has no measured runs to add seeds to")
    restored = None
    if proposal.commit and proposal.source != "baseline" and not experiment.applied:
        discard = experiment.discard_commit
        assert discard is not None
        restored = gitops.revert(
            env.root, discard, experiment.id, "rerun", "restored to run more seeds"
        )
    used = [r.start.seed for r in experiment.runs.values() if r.start]
    # a sweep's further seeds go to its chosen setting
    chosen = experiment.chosen_runs
    overrides = (
        chosen[0].start.overrides
        if chosen and chosen[0].start
        else (proposal.runs[0].overrides if proposal.runs else {})
    )
    inputs = _fresh_inputs(env, experiment, overrides, request.extra_seeds)
    planned = [
        PlannedRun(seed=seed, overrides=run_overrides)
        for seed, run_overrides in zip(env.seeds(len(inputs), after=used), inputs, strict=True)
    ]
    fields = proposal.model_dump(exclude={"v", "at", "kind", "restored", "runs", "source"})
    env.record(
        ProposalRecord(**fields, source="rerun", runs=[*proposal.runs, *planned], restored=restored)
    )
    env.ui.say(f"[{experiment.id}] {len(planned)} more seeds")
    return experiment.id


def _fresh_inputs(
    env: Env, experiment: ExperimentState, overrides: dict[str, str], count: int
) -> list[dict[str, str]]:
    """The overrides of `count` more seeds. A setting that reads a run folder (fusion's base_run)
    reads a different one per seed: the measured runs on this machine of the experiment that
    folder belongs to, newest first, that this experiment has not read yet; fewer seeds when
    fewer are left, so no base seed is counted twice."""
    keys = [key for key, value in overrides.items() if names_run(value)]
    if not keys:
        return [overrides] * count
    state = env.state()
    pools = []
    for key in keys:
        name = PurePath(overrides[key]).name
        read = {
            PurePath(run.start.overrides.get(key, "")).name
            for run in experiment.runs.values()
            if run.start
        }
        owner = next((e for e in state.experiments.values() if name in e.runs), None)
        folders = run_folders(env.workspace, owner) if owner else []
        pools.append([folder for folder in folders if PurePath(folder).name not in read])
    fresh = min(count, *(len(pool) for pool in pools))
    if fresh == 0:
        raise UserError(
            f"{experiment.id} has read every measured run of its base on this machine: "
            "train more seeds of the base first (r on its turn), then add seeds here"
        )
    if fresh < count:
        env.ui.say(f"[{experiment.id}] only {fresh} unread base runs here: {fresh} more seeds")
    return [
        overrides | {key: pool[i] for key, pool in zip(keys, pools, strict=True)}
        for i in range(fresh)
    ]


def begin_resume(env: Env, request: Request) -> str:
    """The experiment an interrupted turn left open: its finished runs are recorded from their
    run folders; finish() runs the rest."""
    open_experiment = env.state().open_experiment
    assert open_experiment is not None
    adopted = adopt_finished(env, open_experiment)
    env.ui.say(
        f"[{open_experiment.id}] resuming {open_experiment.title}"
        + (f": {len(adopted)} run(s) had finished and are recorded" if adopted else "")
    )
    return open_experiment.id


def begin_proposal(env: Env, request: Request) -> str:
    """propose, apply, smoke, commit, record: a change ready to run, or a failed experiment."""
    direction = request.direction
    state = env.state()
    entry = env.settings.train.entry
    steering = read_steering(env.workspace)
    for asked in (1, 2):
        with env.watch.phase("proposing"):
            context = proposal_context(
                env.workspace,
                env.settings,
                tried(state),
                pick=direction.pick,
                idea=direction.idea,
                base_runs=base_runs(env.workspace, entry, state),
                steering=steering,
            )
        try:
            outcome = propose_and_apply(
                env.proposer,
                context,
                env.root,
                smoke_check=lambda proposal: _smoke_first_run(env, proposal),
                on_applied=lambda applied: save_pending(env, applied),
            )
            break
        except ContextTooLong as failed:
            if asked == 1 and shrink_prompt(env, failed):
                continue
            return _no_proposal(env, direction, failed, steering)
        except BudgetExceeded:
            raise
        except LLMError as failed:
            return _no_proposal(env, direction, failed, steering)
    number = state.next_number
    for attempt in outcome.attempts[:-1] if outcome.ok else outcome.attempts:
        _record_failed_attempt(
            env, experiment_id(number, attempt.proposal.title), attempt, direction, steering
        )
        number += 1
    if not outcome.ok:
        clear_pending(env)
        last = experiment_id(number - 1, outcome.attempts[-1].proposal.title)
        if outcome.retry_error is not None:
            record_llm_failure(env, last, "propose", outcome.retry_error)
            env.ui.say(f"no second proposal: {outcome.retry_error}")
            if isinstance(outcome.retry_error, BudgetExceeded):
                raise outcome.retry_error
        return last
    proposal = outcome.proposal
    exp = experiment_id(number, proposal.title)
    entry, planned = planned_runs(proposal, env.seeds())
    with env.watch.phase("git"):
        commit, diff = None, ""
        if outcome.applied and outcome.applied.written:
            body = f"{proposal.hypothesis}\n\nExpected: {proposal.expected_effect}"
            commit = gitops.commit_proposal(
                env.root, exp, proposal.title, body, outcome.applied.paths(env.root)
            )
            diff = gitops.diff_of(env.root, commit)
    env.record(_proposal_record(env, exp, proposal, direction, steering, commit=commit, diff=diff))
    clear_pending(env)
    env.ui.say(f"[{exp}] {proposal.title}: {len(planned)} runs of {entry}")
    return exp


def _smoke_first_run(env: Env, proposal: Proposal) -> str | None:
    entry, planned = planned_runs(proposal, env.seeds(1))
    return smoke(env, entry, planned[0])


_BEGIN = {
    "baseline": begin_baseline,
    "manual": begin_manual,
    "rerun": begin_rerun,
    "resume": begin_resume,
    "propose": begin_proposal,
}


def _proposal_record(
    env: Env,
    exp: str,
    proposal: Proposal,
    direction: Direction,
    steering: str,
    commit: str | None = None,
    diff: str = "",
) -> ProposalRecord:
    entry, planned = planned_runs(proposal, env.seeds())
    return ProposalRecord(
        experiment=exp,
        title=proposal.title,
        hypothesis=proposal.hypothesis,
        rationale=proposal.rationale,
        expected_effect=proposal.expected_effect,
        risk=proposal.risk,
        source="offline" if env.proposer.name == "offline" else "llm",
        move=proposal.move,
        idea=direction.idea or (direction.pick.title if direction.pick else ""),
        entry=entry,
        runs=planned,
        commit=commit,
        diff=diff,
        steering=steering,
    )


def _record_failed_attempt(
    env: Env, exp: str, attempt: Attempt, direction: Direction, steering: str
) -> None:
    assert attempt.error is not None
    env.record(_proposal_record(env, exp, attempt.proposal, direction, steering))
    decide(env, exp, failure=f"failed at the {attempt.stage} stage: {attempt.error}")
    env.ui.say(
        f"[{exp}] the proposal failed at the {attempt.stage} stage: {attempt.error.splitlines()[0]}"
    )


def _no_proposal(env: Env, direction: Direction, failed: LLMError, steering: str) -> str:
    """An LLM that gave no usable proposal is a failed experiment with the reason."""
    exp = experiment_id(env.state().next_number, "no proposal")
    env.record(
        ProposalRecord(
            experiment=exp,
            title="No proposal: the LLM failed",
            hypothesis="-",
            source="llm",
            idea=direction.idea or (direction.pick.title if direction.pick else ""),
            entry=env.settings.train.entry,
            steering=steering,
        )
    )
    record_llm_failure(env, exp, "propose", failed)
    decide(env, exp, failure=f"the proposer gave no proposal: {failed}")
    env.ui.say(f"[{exp}] no proposal: {failed}")
    return exp


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
    return entry, runs or [PlannedRun(seed=seed) for seed in seeds]


# ----- run, judge, decide ---------------------------------------------------------------------


def finish(env: Env, exp: str) -> None:
    """Run what is missing of `exp`, judge its stories, decide it. A judge that fails leaves the
    measured runs recorded and the experiment open: the next turn judges them again."""
    experiment = env.state().experiments[exp]
    proposal = experiment.proposal
    assert proposal is not None
    if todo := missing_runs(experiment):
        reference = env.state().reference(exp)
        if batch_name(exp) in experiment.batches or starts_beside(env, experiment, reference, todo):
            assert reference is not None
            rerun_beside(env, experiment, reference, todo)
        else:
            run_planned(env, exp, proposal.entry, todo, proposal.commit)
    machine = check_drift(env, exp)
    state = env.state()
    try:
        judge_runs(env, state.experiments[exp], state.reference(exp))
    except LLMError as failed:
        if isinstance(failed, BudgetExceeded):
            raise
        record_llm_failure(env, exp, "judge", failed)
        env.ui.say(
            f"[{exp}] the judge failed ({failed}): its runs are recorded; the next turn judges them"
        )
        return
    decide(env, exp, drift=machine)
    # the best's runs on the sealed test split: all of them when it has just become the best, and
    # the ones a drift rerun has since added to it (score_sealed skips runs already scored)
    if (best := env.state().best) is not None:
        score_sealed(env, best)


def check_drift(env: Env, exp: str) -> str:
    """When the candidate's runs and its reference's ran at different machine speeds, run both
    again side by side (loop/drift.py), or complete the side-by-side batch a stopped turn left;
    what the page should say about it, or ""."""
    state = env.state()
    candidate, reference = state.experiments[exp], state.reference(exp)
    if reference is None:
        return ""
    if batch_name(exp) not in candidate.batches:
        ratio = drift(candidate, reference, env.settings.research.drift)
        if ratio is None:
            return ""
        if why := not_rerunnable(reference, candidate):
            return (
                f"its runs ran at {ratio:.0%} of the machine speed of {reference.id}'s "
                f"({speed(candidate.chosen_runs):.1f} against {speed(reference.chosen_runs):.1f} "
                f"GFLOP/s in the calibration before each run); not rerun ({why}): the verdict may "
                "measure the machine"
            )
    rerun_beside(env, candidate, reference)
    return described(env.state(), exp)


# ----- suggest and record ---------------------------------------------------------------------


def suggest(env: Env, exp: str) -> SuggestionsRecord | None:
    """Two or three next steps, recorded on the experiment they follow; None when the proposer
    could not offer any (said in one line: the menu still takes your own idea)."""
    state = env.state()
    for asked in (1, 2):
        with env.watch.phase("suggesting"):
            context = suggestion_context(
                env.workspace,
                env.settings,
                tried(state),
                base_runs=base_runs(env.workspace, env.settings.train.entry, state),
                steering=read_steering(env.workspace),
            )
            try:
                suggestions = env.proposer.suggest(context)
                break
            except ContextTooLong as failed:
                if asked == 1 and shrink_prompt(env, failed):
                    continue
                return _no_suggestions(env, exp, failed)
            except BudgetExceeded:
                raise
            except LLMError as failed:
                return _no_suggestions(env, exp, failed)
    record = SuggestionsRecord(experiment=exp, items=suggestions.items)
    env.record(record)
    return record


def _no_suggestions(env: Env, exp: str, failed: LLMError) -> None:
    record_llm_failure(env, exp, "suggest", failed)
    env.ui.say(f"no suggestions: {failed}")


def record_llm_failure(env: Env, exp: str, stage: str, failed: LLMError) -> None:
    env.record(
        LLMFailureRecord(
            experiment=exp,
            stage=stage,  # type: ignore[arg-type]
            failure=failed.kind,
            reason=str(failed),
        )
    )


MIN_PROMPT_BUDGET = 1_000  # tokens: below this the notes and the trainer no longer fit at all


def shrink_prompt(env: Env, failed: ContextTooLong) -> bool:
    """After a context-length error: lower llm.prompt_token_budget for this session to what the
    server says fits, and say so; False when even that cannot fit."""
    budget = failed.smaller_budget()
    if budget < MIN_PROMPT_BUDGET or budget >= env.settings.llm.prompt_token_budget:
        return False
    llm = env.settings.llm.model_copy(update={"prompt_token_budget": budget})
    env.settings = env.settings.model_copy(update={"llm": llm})
    env.ui.say(
        f"the prompt was over the model's context ({failed.server_message}): asking again with "
        f"llm.prompt_token_budget = {budget} for this session (set it in vibe-research.toml to keep it)"
    )
    return True


def record_turn(env: Env, exp: str) -> None:
    """The turn's overhead, then the notes rendered from the ledger and committed."""
    env.record(
        OverheadRecord(
            experiment=exp, seconds=env.watch.overhead(), turn_s=round(env.watch.total(), 3)
        )
    )
    decision = env.state().experiments[exp].decision
    write_notes(env, exp, decision.verdict if decision else "open")


def write_notes(env: Env, exp: str, verdict: str) -> None:
    with env.watch.phase("notes"):
        _, changed = render_from_ledger(
            env.workspace,
            env.settings.research.question,
            confidence=env.settings.research.confidence,
        )
        gitops.commit_notes(
            env.root, exp, verdict, f"Notes after {exp}.", [env.workspace.ledger, *changed]
        )


def after_interruption(env: Env) -> None:
    """After Ctrl-C or a stop: undo a half-applied proposal, render and commit what was recorded."""
    recover(env)
    open_experiment = env.state().open_experiment
    if open_experiment is not None:
        write_notes(env, open_experiment.id, "interrupted")
