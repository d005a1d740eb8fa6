"""The research state folded from ledger records: what `continue`, the notes and `status` read.

`rebuild_state` is pure: the same records give the same state, so a restarted process sees
exactly what the crashed one had recorded.
"""

from dataclasses import dataclass, field
from pathlib import PurePath
from statistics import mean

from pydantic import BaseModel, Field

from vibe_research.research.state.ledger import (
    DEFAULT_ENTRY,
    DecisionRecord,
    EvaluationRecord,
    JudgementRecord,
    LLMFailureRecord,
    NoteRecord,
    OverheadRecord,
    PickRecord,
    ProposalRecord,
    Record,
    RunEndRecord,
    RunStartRecord,
    SealedRejectedRecord,
    SealedScoreRecord,
    SessionRecord,
    SuggestionsRecord,
)
from vibe_research.research.stats import (
    MIN_RUNS,
    Comparison,
    GainSplit,
    Objective,
    Summary,
    compare,
    split_gain,
    summarize,
)

OK_OUTCOME = "ok"


def names_run(value: str) -> bool:
    """A value that names a run folder (`.../.vibe/runs/RUN`, as fusion's base_run): an input of
    the run, like its seed, not a setting that a sweep varies."""
    path = PurePath(value)
    return path.is_absolute() and path.parent.name == "runs" and path.parent.parent.name == ".vibe"


def variant_overrides(overrides: dict[str, str]) -> dict[str, str]:
    """The overrides that make a setting: all but those naming a run folder, so fusions of the
    base's seeds are seeds of one setting, compared over seeds, not a sweep of one run each."""
    return {key: value for key, value in overrides.items() if not names_run(value)}


def setting_pairs(overrides: dict[str, str]) -> list[str]:
    """Overrides as a reader wants them: `key=value` each, a run folder by its name only."""
    return [
        f"{key}={PurePath(value).name if PurePath(value).is_absolute() else value}"
        for key, value in sorted(overrides.items())
    ]


@dataclass
class RunState:
    run: str
    start: RunStartRecord | None = None
    end: RunEndRecord | None = None
    evaluation: EvaluationRecord | None = None
    test: SealedScoreRecord | None = (
        None  # the sealed test split, scored once if it became the best
    )
    test_rejected: SealedRejectedRecord | None = None  # its sealed scoring failed: not asked again
    judgements: list[JudgementRecord] = field(default_factory=list)  # one per judge identity

    @property
    def judgement(self) -> JudgementRecord | None:
        """The latest judgement (by whichever judge judged last)."""
        return self.judgements[-1] if self.judgements else None

    def judgement_by(self, identity: str) -> JudgementRecord | None:
        return next((j for j in self.judgements if j.identity == identity), None)

    @property
    def curve(self) -> list[tuple[float, float]]:
        """(tokens seen, training loss) of a run that trained in steps; [] for one that did not
        (an n-gram counts its tokens in one go)."""
        end = self.end
        if end is None or not end.steps or end.steps < 2 or not end.tokens:
            return []
        per_step = end.tokens / end.steps
        return [(point.step * per_step, point.loss) for point in end.loss_curve]

    @property
    def seed(self) -> int | None:
        return self.start.seed if self.start else None

    @property
    def setting(self) -> str:
        """The run's overrides as `key=value, ...` ("" for the entry's defaults): its variant of a sweep."""
        return ", ".join(setting_pairs(self.start.overrides)) if self.start else ""

    @property
    def variant(self) -> str:
        """The setting without the run folders it reads: which variant of a sweep the run is."""
        return (
            ", ".join(setting_pairs(variant_overrides(self.start.overrides))) if self.start else ""
        )

    @property
    def interrupted(self) -> bool:
        """Started and never finished (the process died), or finished as interrupted."""
        return self.end is None or self.end.outcome == "interrupted"

    @property
    def measured(self) -> bool:
        return (
            self.end is not None and self.end.outcome == OK_OUTCOME and self.evaluation is not None
        )


@dataclass
class ExperimentState:
    id: str
    proposal: ProposalRecord | None = None
    runs: dict[str, RunState] = field(default_factory=dict)
    # decisions since the latest proposal record; a rerun's proposal record reopens the experiment
    # and moves the decisions before it to `earlier_decisions`
    decisions: list[DecisionRecord] = field(default_factory=list)
    earlier_decisions: list[DecisionRecord] = field(default_factory=list)
    # ("discard" | "restore", sha) in ledger order: the commits that took the change out or put it back
    code_commits: list[tuple[str, str]] = field(default_factory=list)
    suggestions: SuggestionsRecord | None = None
    # every pick made from its menu, in order: a pick that finished an open turn first, then
    # crashed or was stopped, is followed by the one that ran
    picks: list[PickRecord] = field(default_factory=list)
    notes: list[NoteRecord] = field(default_factory=list)
    overhead: list[OverheadRecord] = field(default_factory=list)
    llm_failures: list[LLMFailureRecord] = field(default_factory=list)

    @property
    def pick(self) -> PickRecord | None:
        """The latest pick from its menu."""
        return self.picks[-1] if self.picks else None

    @property
    def number(self) -> int:
        head = self.id.split("-", 1)[0]
        return int(head) if head.isdigit() else 0

    @property
    def title(self) -> str:
        return self.proposal.title if self.proposal else self.id

    @property
    def decision(self) -> DecisionRecord | None:
        """The latest decision: a researcher's keep or discard overrides the automatic one."""
        return self.decisions[-1] if self.decisions else None

    @property
    def open(self) -> bool:
        """Proposed (or reopened by a rerun) and not decided since: the turn that runs it is not done."""
        return self.proposal is not None and not self.decisions

    @property
    def applied(self) -> bool:
        """Whether the experiment's code change is in experiments/ now, read from the ledger: an
        open experiment's change is in place (the loop puts it there before running it), a decided
        one's exactly when it was kept. An experiment without a commit changes nothing."""
        if (
            self.proposal is None
            or self.proposal.commit is None
            or self.proposal.source == "baseline"
        ):
            return False
        return self.open or bool(self.decision and self.decision.kept)

    @property
    def discard_commit(self) -> str | None:
        """The commit that took the change out when it was last discarded: what a restore reverts."""
        discards = [sha for what, sha in self.code_commits if what == "discard"]
        return discards[-1] if discards else None

    @property
    def code_commit(self) -> str | None:
        """The commit whose tree holds this experiment's code: its latest restore, else its own."""
        restores = [sha for what, sha in self.code_commits if what == "restore"]
        return restores[-1] if restores else (self.proposal.commit if self.proposal else None)

    @property
    def entry(self) -> str:
        return self.proposal.entry if self.proposal else DEFAULT_ENTRY

    @property
    def measured_runs(self) -> list[RunState]:
        return [run for run in self.runs.values() if run.measured]

    @property
    def variants(self) -> dict[str, list[RunState]]:
        """Measured runs by setting, in the order first run: one key unless the experiment is a sweep."""
        grouped: dict[str, list[RunState]] = {}
        for run in self.measured_runs:
            grouped.setdefault(run.variant, []).append(run)
        return grouped

    @property
    def is_sweep(self) -> bool:
        """Its runs differ in overrides (e.g. n-gram orders 2 to 6), not only in seed."""
        return len({run.variant for run in self.runs.values() if run.start}) > 1

    @property
    def chosen_runs(self) -> list[RunState]:
        """The measured runs of the setting that stands for the experiment (a sweep's lowest mean
        bpb, else its only one): what the statistics, verdicts and leaderboard use."""
        variants = self.variants
        if not variants:
            return []
        return min(
            variants.values(),
            key=lambda runs: mean(run.evaluation.bpb for run in runs if run.evaluation),
        )

    @property
    def chosen(self) -> str | None:
        """The chosen setting, as `key=value, ...`."""
        runs = self.chosen_runs
        return runs[0].variant if runs else None

    @property
    def bpbs(self) -> list[float]:
        return [run.evaluation.bpb for run in self.chosen_runs if run.evaluation]

    @property
    def test_bpbs(self) -> list[float]:
        """The chosen runs' bpb on the sealed test split, where they were scored on it."""
        return [run.test.bpb for run in self.chosen_runs if run.test]

    @property
    def test_rejected(self) -> list[SealedRejectedRecord]:
        """The chosen runs whose sealed test scoring failed: what test_bpbs leaves out."""
        return [run.test_rejected for run in self.chosen_runs if run.test_rejected]

    @property
    def judge_identity(self) -> str | None:
        """The judge of the latest judgement of the chosen runs: whose scores the experiment shows."""
        judged = [run.judgement for run in self.chosen_runs if run.judgement]
        return max(judged, key=lambda j: j.at).identity if judged else None

    @property
    def judge_scores(self) -> list[float]:
        return scores_by(self.chosen_runs, self.judge_identity) if self.judge_identity else []

    def runs_of(self, batch: str | None) -> list[RunState]:
        """The chosen runs, or those of one side-by-side batch of them (drift guard)."""
        return [
            r for r in self.chosen_runs if batch is None or (r.start and r.start.batch == batch)
        ]

    @property
    def batches(self) -> set[str]:
        return {r.start.batch for r in self.runs.values() if r.start and r.start.batch}

    @property
    def interrupted_runs(self) -> list[RunState]:
        return [run for run in self.runs.values() if run.interrupted]


def scores_by(runs: list[RunState], identity: str) -> list[float]:
    """The mean rubric scores one judge gave these runs (those it judged)."""
    scores = []
    for run in runs:
        judgement = run.judgement_by(identity)
        if judgement and judgement.scores:
            scores.append(judgement.overall)
    return scores


def paired_runs(
    candidate: ExperimentState, reference: ExperimentState, batch: str | None
) -> tuple[list[RunState], list[RunState]]:
    """The evaluated runs a comparison uses on each side. Without `batch`, all chosen runs; with
    one, the side-by-side batch's complete pairs only: a seed counts where both sides have an
    evaluated run in the batch, so a seed one side lost (rejected, crashed) takes the other
    side's run of it out too, and both sides stay measured under the same machine conditions."""
    sides = [
        [run for run in side.runs_of(batch) if run.evaluation] for side in (candidate, reference)
    ]
    if batch is None:
        return sides[0], sides[1]
    both = {run.seed for run in sides[0]} & {run.seed for run in sides[1]}
    return [r for r in sides[0] if r.seed in both], [r for r in sides[1] if r.seed in both]


@dataclass
class ResearchState:
    experiments: dict[str, ExperimentState] = field(default_factory=dict)
    # entry -> the experiment most recently kept with it: where that entry's code now stands
    current: dict[str, str] = field(default_factory=dict)
    # the kept experiment with the lowest mean bpb over all entries: the leader
    best: str | None = None
    sessions: list[SessionRecord] = field(default_factory=list)

    @property
    def best_experiment(self) -> ExperimentState | None:
        return self.experiments.get(self.best) if self.best else None

    def reference(self, experiment: str) -> ExperimentState | None:
        """What `experiment` is measured against, never itself. A change to a script's code: that
        script's latest kept experiment (train.py as it stands), else the leader. Runs that change
        no code (an n-gram sweep, a fusion of the best run, a seed check): the leader."""
        this = self.experiments[experiment]
        changes_code = this.proposal is not None and this.proposal.commit is not None
        for candidate in (
            (self.current.get(this.entry), self.best) if changes_code else (self.best,)
        ):
            if candidate is not None and candidate != experiment:
                return self.experiments[candidate]
        return None

    def current_for(self, entry: str) -> ExperimentState | None:
        current = self.current.get(entry)
        return self.experiments[current] if current else None

    @property
    def open_experiment(self) -> ExperimentState | None:
        """The last experiment without a decision: what a crash or Ctrl-C left unfinished."""
        undecided = [e for e in self.experiments.values() if e.open]
        return undecided[-1] if undecided else None

    @property
    def interrupted(self) -> list[tuple[ExperimentState, RunState]]:
        return [(e, run) for e in self.experiments.values() for run in e.interrupted_runs]

    @property
    def next_number(self) -> int:
        return max((e.number for e in self.experiments.values()), default=-1) + 1

    @property
    def last_pick(self) -> PickRecord | None:
        picks = [e.pick for e in self.experiments.values() if e.pick]
        return max(picks, key=lambda pick: pick.at) if picks else None

    @property
    def last_suggestions(self) -> SuggestionsRecord | None:
        offered = [e.suggestions for e in self.experiments.values() if e.suggestions]
        return max(offered, key=lambda record: record.at) if offered else None


def _run(experiment: ExperimentState, run: str) -> RunState:
    return experiment.runs.setdefault(run, RunState(run=run))


def _fold(experiment: ExperimentState, record: Record) -> None:
    match record:
        case ProposalRecord():
            experiment.proposal = record
            experiment.earlier_decisions += experiment.decisions
            experiment.decisions = []
            if record.restored:
                experiment.code_commits.append(("restore", record.restored))
        case RunStartRecord():
            _run(experiment, record.run).start = record
        case RunEndRecord():
            _run(experiment, record.run).end = record
        case EvaluationRecord():
            _run(experiment, record.run).evaluation = record
        case SealedScoreRecord():
            _run(experiment, record.run).test = record
        case SealedRejectedRecord():
            _run(experiment, record.run).test_rejected = record
        case JudgementRecord():
            run = _run(experiment, record.run)
            run.judgements = [j for j in run.judgements if j.identity != record.identity]
            run.judgements.append(record)
        case DecisionRecord():
            experiment.decisions.append(record)
            if record.commit:
                experiment.code_commits.append(
                    ("restore" if record.kept else "discard", record.commit)
                )
        case SuggestionsRecord():
            experiment.suggestions = record
        case PickRecord():
            experiment.picks.append(record)
        case NoteRecord():
            experiment.notes.append(record)
        case OverheadRecord():
            experiment.overhead.append(record)
        case LLMFailureRecord():
            experiment.llm_failures.append(record)


def rebuild_state(records: list[Record]) -> ResearchState:
    """Fold the ledger in order. Each entry's current experiment is the one most recently decided
    as kept with it; the best is the current experiment with the lowest mean bpb."""
    state = ResearchState()
    kept_order: list[str] = []
    for record in records:
        if isinstance(record, SessionRecord):
            state.sessions.append(record)
            continue
        experiment = state.experiments.setdefault(
            record.experiment, ExperimentState(id=record.experiment)
        )
        _fold(experiment, record)
        if isinstance(record, DecisionRecord):
            if record.experiment in kept_order:
                kept_order.remove(record.experiment)
            if record.kept:
                kept_order.append(record.experiment)
    for experiment_id in kept_order:
        state.current[state.experiments[experiment_id].entry] = experiment_id
    leaders = [state.experiments[e] for e in state.current.values()]
    # the leader is chosen among experiments measured over seeds: one lucky run does not lead
    measured = [e for e in leaders if len(e.bpbs) >= MIN_RUNS] or [e for e in leaders if e.bpbs]
    if measured:
        state.best = min(measured, key=lambda e: (mean(e.bpbs), -kept_order.index(e.id))).id
    elif kept_order:
        state.best = kept_order[-1]
    return state


def gain_split(state: ResearchState, experiment: str, batch: str | None = None) -> GainSplit | None:
    """Where the candidate's bpb difference from its reference came from (stats.split_gain), for
    two experiments that trained in steps on the same tokenizer; None otherwise. With `batch`,
    the runs of that side-by-side batch on both sides, as the verdict compares them."""
    reference = state.reference(experiment)
    candidate = state.experiments[experiment]
    if reference is None:
        return None
    sides = [
        [run for run in side if run.curve] for side in paired_runs(candidate, reference, batch)
    ]
    tokenizers = {run.evaluation.tokenizer for side in sides for run in side if run.evaluation}
    if not all(sides) or len(tokenizers) != 1:
        return None
    delta = mean(run.evaluation.bpb for run in sides[0]) - mean(
        run.evaluation.bpb for run in sides[1]
    )
    return split_gain([run.curve for run in sides[0]], [run.curve for run in sides[1]], delta)


def compare_with_best(
    state: ResearchState,
    experiment: str,
    objective: Objective,
    confidence: float = 0.95,
    judge: str | None = None,
    batch: str | None = None,
) -> Comparison | None:
    """The experiment's seeds against its reference's (see ResearchState.reference); None without
    one. Judge scores compare within one judge identity, `judge` (default: the candidate's); with
    `batch`, only that side-by-side batch's complete pairs count (paired_runs)."""
    reference = state.reference(experiment)
    if reference is None:
        return None
    candidate = state.experiments[experiment]
    identity = judge or candidate.judge_identity
    bases = None if batch else base_pairs(candidate, reference)
    if bases:
        ours, theirs = [pair[0] for pair in bases], [pair[1] for pair in bases]
        scored = [(scores_by([a], identity), scores_by([b], identity)) for a, b in bases]
        judged = [(a[0], b[0]) for a, b in scored if a and b] if identity else []
        return compare(
            objective,
            [run.evaluation.bpb for run in ours if run.evaluation],
            [run.evaluation.bpb for run in theirs if run.evaluation],
            [a for a, _ in judged],
            [b for _, b in judged],
            confidence,
            pairs=True,
        )
    ours, theirs = paired_runs(candidate, reference, batch)
    return compare(
        objective,
        [run.evaluation.bpb for run in ours if run.evaluation],
        [run.evaluation.bpb for run in theirs if run.evaluation],
        scores_by(ours, identity) if identity else [],
        scores_by(theirs, identity) if identity else [],
        confidence,
    )


def base_pairs(
    candidate: ExperimentState, reference: ExperimentState
) -> list[tuple[RunState, RunState]] | None:
    """(run, the reference run it read) for each evaluated run of the candidate, when every one of
    them read exactly one of the reference's evaluated runs (fusion's base_run) and no two read the
    same; else None (the seeds are independent and Welch's test compares them)."""
    pairs = []
    for run in candidate.chosen_runs:
        if run.evaluation is None or run.start is None:
            continue
        named = [PurePath(v).name for v in run.start.overrides.values() if names_run(v)]
        base = reference.runs.get(named[0]) if len(named) == 1 else None
        if base is None or base.evaluation is None:
            return None
        pairs.append((run, base))
    if not pairs or len({base.run for _, base in pairs}) < len(pairs):
        return None
    return pairs


class LeaderboardRow(BaseModel):
    """One experiment's standing, as `status --json` prints it and the notes tabulate it."""

    rank: int
    experiment: str
    title: str
    setting: str = Field(
        default="", description="a sweep's best setting, whose runs the row summarises"
    )
    runs: int
    bpb: Summary | None
    test_bpb: Summary | None = Field(default=None, description="sealed test split, if scored")
    judge: Summary | None
    win_rate: float | None
    verdict: str | None
    kept: bool
    best: bool
    commit: str | None


def leaderboard(state: ResearchState, confidence: float = 0.95) -> list[LeaderboardRow]:
    """Measured experiments by mean bpb, lowest first; experiments without measurements last."""
    rows = []
    for experiment in state.experiments.values():
        bpbs, judges = experiment.bpbs, experiment.judge_scores
        pairwise = [
            run.judgement.pairwise.win_rate
            for run in experiment.chosen_runs
            if run.judgement and run.judgement.pairwise
        ]
        decision = experiment.decision
        rows.append(
            LeaderboardRow(
                rank=0,
                experiment=experiment.id,
                title=experiment.title,
                setting=(experiment.chosen or "") if experiment.is_sweep else "",
                runs=len(bpbs),
                bpb=summarize(bpbs, confidence) if bpbs else None,
                test_bpb=summarize(experiment.test_bpbs, confidence)
                if experiment.test_bpbs
                else None,
                judge=summarize(judges, confidence) if judges else None,
                win_rate=sum(pairwise) / len(pairwise) if pairwise else None,
                verdict=decision.verdict if decision else None,
                kept=bool(decision and decision.kept),
                best=experiment.id == state.best,
                commit=experiment.proposal.commit if experiment.proposal else None,
            )
        )
    rows.sort(key=lambda row: (row.bpb is None, row.bpb.mean if row.bpb else 0.0, row.experiment))
    return [row.model_copy(update={"rank": index}) for index, row in enumerate(rows, start=1)]
