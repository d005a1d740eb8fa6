"""The research loop: the turns `vibe-research continue` runs, and resuming after a crash.

A turn is: (resume what is open, or measure the baseline, or propose a change), run and judge
it, decide, ask for the next steps, render the notes and commit them. The overhead record of
each turn says how long it spent outside training and evaluation.
"""

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vibe_research.llm.proposer import make_proposer
from vibe_research.llm.schemas import Proposal, Suggestions
from vibe_research.lm.errors import UserError
from vibe_research.research import gitops
from vibe_research.research.datacache import caches_ready, prepare_caches
from vibe_research.research.edits import write_atomic
from vibe_research.research.judge.cache import JudgeCache
from vibe_research.research.ledger import (
    DecisionRecord,
    OverheadRecord,
    PlannedRun,
    ProposalRecord,
    SuggestionsRecord,
    experiment_id,
)
from vibe_research.research.ledger import Suggestion as SuggestionRecord
from vibe_research.research.notes import render_from_ledger
from vibe_research.research.prompting import proposal_context, suggestion_context
from vibe_research.research.proposals import propose_and_apply
from vibe_research.research.state import ExperimentState, ResearchState
from vibe_research.research.turn import (
    Direction,
    Env,
    Interrupted,
    Stopwatch,
    TurnUI,
    best_run_dir,
    decide,
    execute,
    history,
    judge_runs,
    make_specs,
    planned_runs,
    record_result,
)
from vibe_research.runs.leftovers import kill_leftovers
from vibe_research.runs.result import RunResult
from vibe_research.runs.runner import RunFailed, resolve_tokenizer
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.policy import load_policy
from vibe_research.settings import Settings
from vibe_research.workspace import Workspace

log = logging.getLogger(__name__)

PENDING = "pending-proposal.json"


def build_env(workspace: Workspace, settings: Settings, ui: TurnUI) -> Env:
    """Proposer, judge, sandbox policy and executor as the settings name them."""
    from vibe_research.llm.client import LLMClient
    from vibe_research.research.judge.scoring import make_judge

    policy = load_policy(workspace.sandbox_file)
    if settings.train.executor == "ray":
        from vibe_research.runs.ray_executor import RayExecutor

        executor = RayExecutor(policy, settings.train.ray)
    else:
        from vibe_research.runs.executor import LocalExecutor

        executor = LocalExecutor(policy)
    proposer = make_proposer(settings.llm, workspace.llm_log)
    client = LLMClient(settings.llm, workspace.llm_log) if proposer.name != "offline" else None
    if not caches_ready(workspace, settings.data.tokenizer):
        ui.say(
            f"building the {settings.data.tokenizer} token caches the judge and the baseline need"
        )
        prepare_caches(workspace, settings, settings.data.tokenizer)
    judge = make_judge(settings, workspace, client)
    return Env(
        workspace=workspace,
        settings=settings,
        executor=executor,
        proposer=proposer,
        judge=judge,
        judge_cache=JudgeCache(workspace.cache / "judge"),
        ui=ui,
    )


# ----- crash recovery ---------------------------------------------------------------------------


def _pending(env: Env) -> Path:
    return env.workspace.state / PENDING


def save_pending(env: Env) -> None:
    """Before edits land: HEAD and every experiments/ file, so a crash can put them back."""
    files = {
        str(p.relative_to(env.root)): p.read_text(encoding="utf-8")
        for p in sorted(env.workspace.experiments.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    write_atomic(_pending(env), json.dumps({"head": gitops.head(env.root), "files": files}))


def clear_pending(env: Env) -> None:
    _pending(env).unlink(missing_ok=True)


def recover(env: Env) -> None:
    """Undo a proposal a crash left half done: edits not committed, or committed and never recorded."""
    pending = _pending(env)
    if not pending.exists():
        return
    saved = json.loads(pending.read_text(encoding="utf-8"))
    if gitops.head(env.root) != saved["head"]:
        recorded = {e.proposal.commit for e in env.state().experiments.values() if e.proposal}
        head = gitops.head(env.root)
        if head not in recorded:
            env.ui.say(
                f"an interrupted turn committed {head[:8]} without recording it: reverting it"
            )
            gitops.revert(
                env.root,
                head,
                "interrupted",
                "failed",
                "the turn that made it was killed before recording it",
            )
    else:
        for path in env.workspace.experiments.rglob("*"):
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and str(path.relative_to(env.root)) not in saved["files"]
            ):
                path.unlink()
        for name, text in saved["files"].items():
            target = env.root / name
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                write_atomic(target, text)
        env.ui.say("put experiments/ back as it was before an interrupted proposal")
    clear_pending(env)


def adopt_finished_runs(env: Env, experiment: ExperimentState) -> list[str]:
    """Runs started and not recorded (the orchestrator died) whose result.json exists: record them."""
    adopted = []
    for run in experiment.runs.values():
        if run.end is None:
            kill_leftovers(env.workspace.runs / run.run)
        result_file = env.workspace.runs / run.run / "result.json"
        if run.end is None and result_file.is_file():
            result = RunResult.model_validate_json(result_file.read_text(encoding="utf-8"))
            if result.outcome != "interrupted":
                record_result(env, experiment.id, result)
                adopted.append(run.run)
    return adopted


def missing_runs(experiment: ExperimentState) -> list[PlannedRun]:
    """Planned runs of `experiment` that have no measured run of the same seed and overrides."""
    proposal = experiment.proposal
    if proposal is None:
        return []
    done = [
        (r.start.seed, r.start.overrides)
        for r in experiment.runs.values()
        if r.start and r.end and r.end.outcome not in ("interrupted",)
    ]
    return [planned for planned in proposal.runs if (planned.seed, planned.overrides) not in done]


# ----- turns ------------------------------------------------------------------------------------


def ensure_tokens(env: Env, specs: list[RunSpec]) -> list[RunSpec]:
    """Each spec with the tokenizer its run reads, whose token caches are built first if missing.

    The tokenizer is resolved once per distinct entry and overrides (runs.runner.resolve_tokenizer);
    the runner then skips asking again.
    """
    policy, report = getattr(env.executor, "policy", None), getattr(env.executor, "report", None)
    known: dict[tuple[str, tuple], str | None] = {}
    ready: list[RunSpec] = []
    for spec in specs:
        key = (spec.entry, tuple(sorted(spec.overrides.items())))
        if key not in known:
            known[key] = spec.overrides.get("tokenizer")
            if known[key] is None and policy is not None and report is not None:
                try:
                    known[key] = resolve_tokenizer(spec, policy, report)
                except RunFailed as failed:
                    log.debug("describe failed (%s); the run will record why", failed.reason)
            tokenizer = known[key]
            if tokenizer is not None and not caches_ready(env.workspace, tokenizer):
                env.ui.say(f"building the {tokenizer} token caches")
                prepare_caches(env.workspace, env.settings, tokenizer)
        ready.append(spec.model_copy(update={"tokenizer": known[key]}))
    return ready


def run_experiment(
    env: Env, experiment: str, entry: str, planned: list[PlannedRun], commit: str | None
) -> None:
    with env.watch.phase("data"):
        specs = ensure_tokens(env, make_specs(env, experiment, entry, planned))
    execute(env, experiment, specs, commit)


def baseline(env: Env) -> str:
    """The first turn: measure experiments/ as it stands."""
    state = env.state()
    entry = env.settings.train.entry
    exp = experiment_id(state.next_number, "baseline")
    planned = [PlannedRun(seed=seed) for seed in env.seeds()]
    commit = gitops.head(env.root)
    env.record(
        ProposalRecord(
            experiment=exp,
            title="Baseline: experiments/ as it stands",
            source="baseline",
            hypothesis="The starting point every later change is measured against.",
            rationale="No experiment is recorded yet.",
            commit=commit,
            entry=entry,
            runs=planned,
        )
    )
    env.ui.say(
        f"[{exp}] measuring the baseline: {len(planned)} runs of {entry}, {env.settings.train.budget_s:g} s each"
    )
    if (error := smoke_run(env, entry, planned[0])) is not None:
        env.record(
            DecisionRecord(
                experiment=exp,
                verdict="failed",
                kept=False,
                reason=f"the smoke run failed: {error}",
            )
        )
        return exp
    run_experiment(env, exp, entry, planned, commit)
    return exp


def smoke_check(env: Env, proposal: Proposal) -> str | None:
    """The proposal's first run as a smoke run (see smoke_run)."""
    entry, planned = planned_runs(proposal, env.seeds(1))
    return smoke_run(env, entry, planned[0])


def smoke_run(env: Env, entry: str, run: PlannedRun) -> str | None:
    """`run` in the sandbox, told the full budget (so it makes the same choices, and a compiled model
    compiles here, warming the cache every timed seed then reads alike) and stopped after its first
    step, or at smoke_budget_s; then loaded and scored. The error text, or None if all went well."""
    cap = env.settings.train.smoke_budget_s
    specs = [
        spec.model_copy(update={"stop_after_steps": 1, "stop_after_s": cap})
        for spec in make_specs(env, "smoke", entry, [run], samples=0)
    ]
    env.ui.say(f"smoke run: {entry} until its first step (at most {cap:g} s)")
    with env.watch.phase("smoke"):
        specs = ensure_tokens(env, specs)
        with env.ui.progress(specs) as on_event:
            result = env.executor.execute(specs, on_event)[0]
    if result.outcome == "interrupted":
        raise Interrupted("smoke run stopped by Ctrl-C")
    if result.outcome == "ok":
        return None
    return f"the smoke run ended {result.outcome}: {result.reason}\n--- log tail ---\n{result.log_tail[-3000:]}"


def propose(env: Env, direction: Direction) -> str:
    """Ask for a proposal, apply and smoke-run it, commit it, run it."""
    state = env.state()
    best_run = best_run_dir(env, state)
    with env.watch.phase("proposing"):
        context = proposal_context(
            env.workspace,
            env.settings,
            history(state),
            pick=direction.pick,
            idea=direction.idea,
            best_run=best_run,
        )
    save_pending(env)
    try:
        outcome = propose_and_apply(env.proposer, context, env.root, lambda p: smoke_check(env, p))
    except BaseException:
        recover(env)
        raise
    number = state.next_number
    for attempt in outcome.attempts:
        if attempt.error is None:
            break
        clear_pending(env)
        exp = experiment_id(number, attempt.proposal.title)
        env.record(ProposalRecord(**_proposal_fields(env, exp, attempt.proposal, direction)))
        env.record(
            DecisionRecord(
                experiment=exp,
                verdict="failed",
                kept=False,
                reason=f"failed at the {attempt.stage} stage: {attempt.error}",
            )
        )
        env.ui.say(
            f"[{exp}] the proposal failed at the {attempt.stage} stage: {attempt.error.splitlines()[0]}"
        )
        number += 1
    if not outcome.ok:
        return exp
    proposal = outcome.proposal
    exp = experiment_id(number, proposal.title)
    record = _proposal_fields(env, exp, proposal, direction)
    entry, planned = record["entry"], record["runs"]
    with env.watch.phase("git"):
        commit = None
        if proposal.edits:
            body = f"{proposal.hypothesis}\n\nExpected: {proposal.expected_effect}"
            commit = gitops.commit_proposal(env.root, exp, proposal.title, body)
        diff = gitops.diff_of(env.root, commit) if commit else ""
    env.record(ProposalRecord(**record, commit=commit, diff=diff))
    clear_pending(env)
    env.ui.say(f"[{exp}] {proposal.title}: {len(planned)} runs of {entry}")
    run_experiment(env, exp, entry, planned, commit)
    return exp


def _proposal_fields(env: Env, exp: str, proposal: Proposal, direction: Direction) -> dict:
    entry, planned = planned_runs(proposal, env.seeds())
    return dict(
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
    )


def resume(env: Env, experiment: ExperimentState) -> str:
    """Finish an open experiment: record runs that finished, rerun the ones that did not."""
    adopted = adopt_finished_runs(env, experiment)
    if adopted:
        env.ui.say(
            f"[{experiment.id}] recorded {len(adopted)} run(s) that finished before the interruption"
        )
    experiment = env.state().experiments[experiment.id]
    todo = missing_runs(experiment)
    proposal = experiment.proposal
    assert proposal is not None
    if todo:
        env.ui.say(f"[{experiment.id}] rerunning {len(todo)} interrupted run(s)")
        run_experiment(env, experiment.id, proposal.entry, todo, proposal.commit)
    return experiment.id


def rerun(env: Env, experiment_id_: str, extra: int) -> str:
    """More seeds of an experiment (the menu's r): its change back in place, `extra` new seeds, decided again."""
    experiment = env.state().experiments[experiment_id_]
    proposal = experiment.proposal
    if proposal is None:
        raise UserError(f"{experiment_id_} has no proposal to rerun")
    reverts = [
        c for c in gitops.commits_for(env.root, experiment.id) if c.subject.startswith("Revert ")
    ]
    if len(reverts) % 2 == 1:
        gitops.revert(
            env.root, reverts[-1].sha, experiment.id, "rerun", "restored to run more seeds"
        )
    used = [r.start.seed for r in experiment.runs.values() if r.start]
    # a sweep's further seeds go to its chosen setting
    chosen = experiment.chosen_runs
    overrides = (
        chosen[0].start.overrides
        if chosen and chosen[0].start
        else (proposal.runs[0].overrides if proposal.runs else {})
    )
    planned = [PlannedRun(seed=seed, overrides=overrides) for seed in env.seeds(extra, after=used)]
    env.record(
        ProposalRecord(
            **{
                **proposal.model_dump(exclude={"v", "at", "kind"}),
                "source": "rerun",
                "runs": [*proposal.runs, *planned],
            }
        )
    )
    env.ui.say(f"[{experiment.id}] {extra} more seeds")
    run_experiment(env, experiment.id, proposal.entry, planned, proposal.commit)
    return experiment.id


def conclude(env: Env, exp: str) -> DecisionRecord:
    """Judge the measured runs and decide."""
    state = env.state()
    experiment = state.experiments[exp]
    judge_runs(env, experiment, state.reference(exp))
    return decide(env, exp)


def suggest(env: Env, exp: str) -> SuggestionsRecord | None:
    """Two or three next steps, recorded on the experiment they follow."""
    state = env.state()
    with env.watch.phase("suggesting"):
        context = suggestion_context(
            env.workspace, env.settings, history(state), best_run=best_run_dir(env, state)
        )
        try:
            suggestions: Suggestions = env.proposer.suggest(context)
        except UserError as exc:
            env.ui.say(f"no suggestions: {exc}")
            return None
    record = SuggestionsRecord(
        experiment=exp,
        items=[
            SuggestionRecord(
                title=s.title,
                idea=s.idea,
                why=s.why,
                expected_effect=s.expected_effect,
                cost_minutes=s.cost_minutes,
                risk=s.risk,
                move=s.move,
            )
            for s in suggestions.items
        ],
    )
    env.record(record)
    return record


def write_notes(env: Env, exp: str, verdict: str) -> None:
    with env.watch.phase("notes"):
        render_from_ledger(env.workspace, env.settings.research.question)
        gitops.commit_notes(env.root, exp, verdict, f"Notes after {exp}.")


def has_baseline(state: ResearchState) -> bool:
    """Whether a baseline was measured (a failed one does not count: the next turn measures again)."""
    return any(
        e.proposal
        and e.proposal.source == "baseline"
        and e.decision
        and e.decision.verdict == "baseline"
        for e in state.experiments.values()
    )


def run_turn(
    env: Env, direction: Direction | None, rerun_of: tuple[str, int] | None = None
) -> tuple[str, DecisionRecord]:
    """One whole turn; returns the experiment and its decision. Raises Interrupted after Ctrl-C."""
    env.watch = Stopwatch()
    state = env.state()
    open_experiment = state.open_experiment
    if rerun_of is not None:
        exp = rerun(env, *rerun_of)
    elif open_experiment is not None:
        exp = resume(env, open_experiment)
    elif not has_baseline(state):
        exp = baseline(env)
    else:
        exp = propose(env, direction or Direction())
    decision = env.state().experiments[exp].decision
    if decision is None or rerun_of is not None:
        decision = conclude(env, exp)
    suggest(env, exp)
    env.record(
        OverheadRecord(
            experiment=exp, seconds=env.watch.overhead(), turn_s=round(env.watch.total(), 3)
        )
    )
    write_notes(env, exp, decision.verdict)
    return exp, decision


def interrupted_turn(env: Env) -> None:
    """After Ctrl-C: put back a half-applied proposal, render and commit what was recorded."""
    recover(env)
    state = env.state()
    open_experiment = state.open_experiment
    if open_experiment is not None:
        render_from_ledger(env.workspace, env.settings.research.question)
        gitops.commit_notes(
            env.root, open_experiment.id, "interrupted", "Runs interrupted by Ctrl-C."
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def exclusive(workspace: Workspace) -> Iterator[None]:
    """One `continue` per workspace at a time; a lock left by a killed process is taken over."""
    lock = workspace.state / "continue.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    if lock.exists():
        text = lock.read_text(encoding="utf-8").strip()
        if text.isdigit() and int(text) != os.getpid() and _alive(int(text)):
            raise UserError(
                f"another `vibe-research continue` (pid {text}) is working in {workspace.root}: wait for it or stop it"
            )
    write_atomic(lock, str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
