"""What each page shows, built from one snapshot of the state: plain data for the templates.

Tables are lists of Columns, and a column whose every cell is empty is left out, so a figure
the state gains (the sealed test split's bpb, say) is one more Column in a list here, and shows
only in workspaces that have it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from statistics import mean
from typing import Generic, TypeVar

from vibe_research.ui import charts
from vibe_research.ui.format import difference, interval, num, p_value, plus_minus
from vibe_research.ui.source import (
    Difference,
    ExperimentState,
    JudgementRecord,
    LeaderboardRow,
    ResearchState,
    RunState,
    SampleScore,
    Snapshot,
    sizes,
)

Item = TypeVar("Item")


@dataclass(frozen=True)
class Column(Generic[Item]):
    header: str
    value: Callable[[Item], str | None]  # None: nothing for this item (shown as a dash)
    numeric: bool = True


def shown(columns: list[Column[Item]], items: list[Item]) -> list[Column[Item]]:
    """The columns with a value for at least one item."""
    return [c for c in columns if any(c.value(item) is not None for item in items)]


def verdict_text(verdict: str | None, kept: bool, by: str = "auto") -> str:
    if verdict is None:
        return "undecided"
    if verdict in ("baseline", "failed"):
        return verdict
    done = "kept" if kept else "discarded"
    return f"{verdict}, {done}" + (" by the researcher" if by == "researcher" else "")


LEADERBOARD: list[Column[LeaderboardRow]] = [
    Column("valid bpb", lambda r: plus_minus(r.bpb, 4) if r.bpb else None),
    Column("interval", lambda r: interval(r.bpb.low, r.bpb.high, 4) if r.bpb else None),
    Column("judge", lambda r: plus_minus(r.judge, 2) if r.judge else None),
    Column("win rate", lambda r: f"{r.win_rate:.0%}" if r.win_rate is not None else None),
    Column("seeds", lambda r: str(r.runs) if r.runs else None),
    Column("verdict", lambda r: verdict_text(r.verdict, r.kept), numeric=False),
    Column("commit", lambda r: r.commit[:8] if r.commit else None, numeric=False),
]


def _outcome(run: RunState) -> str:
    if run.end is None:
        return "not finished"
    return run.end.outcome + (f": {run.end.reason}" if run.end.reason else "")


RUNS: list[Column[RunState]] = [
    Column("setting", lambda r: r.setting or "defaults", numeric=False),
    Column("seed", lambda r: num(r.seed)),
    Column("budget s", lambda r: num(r.start.budget_s) if r.start else None),
    Column("outcome", _outcome, numeric=False),
    Column("steps", lambda r: num(r.end.steps) if r.end else None),
    Column("tokens", lambda r: num(r.end.tokens) if r.end else None),
    Column("tokens/s", lambda r: num(r.end.tokens_per_s) if r.end else None),
    Column("params", lambda r: num(r.end.params) if r.end else None),
    Column("device", lambda r: r.end.device if r.end else None, numeric=False),
    Column("seconds", lambda r: num(r.end.elapsed_s) if r.end else None),
    Column("bpb", lambda r: num(r.evaluation.bpb, 4) if r.evaluation else None),
    Column("perplexity", lambda r: num(r.evaluation.perplexity, 2) if r.evaluation else None),
    Column(
        "judge",
        lambda r: num(r.judgement.overall, 2) if r.judgement and r.judgement.scores else None,
    ),
]


def _perplexity(experiment: ExperimentState) -> str | None:
    evaluations = [run.evaluation for run in experiment.chosen_runs if run.evaluation]
    if not evaluations:
        return None
    tokenizers = ", ".join(sorted({e.tokenizer for e in evaluations}))
    return f"{mean(e.perplexity for e in evaluations):.2f} per {tokenizers} token"


def best_facts(snapshot: Snapshot) -> list[tuple[str, str]]:
    """The leader's figures, label and value, those it has."""
    state = snapshot.state
    best = state.best_experiment
    row = next((r for r in snapshot.rows if r.best), None)
    if best is None or row is None:
        return []
    confidence = snapshot.settings.research.confidence
    facts = [
        (
            "valid bpb",
            f"{plus_minus(row.bpb, 4)} over {row.runs} seed{'s' if row.runs != 1 else ''}"
            + (
                f" ({confidence:.0%} interval {interval(row.bpb.low, row.bpb.high, 4)})"
                if row.bpb.low is not None
                else ""
            )
            if row.bpb
            else None,
        ),
        ("perplexity", _perplexity(best)),
        ("judge", plus_minus(row.judge, 2) if row.judge else None),
        ("setting", row.setting or None),
        ("script", best.entry),
        ("commit", row.commit[:8] if row.commit else None),
    ]
    return [(label, value) for label, value in facts if value is not None]


def entries(state: ResearchState) -> dict[str, str]:
    return {e.id: e.entry for e in state.experiments.values()}


@dataclass(frozen=True)
class Home:
    snapshot: Snapshot
    facts: list[tuple[str, str]]
    columns: list[Column[LeaderboardRow]]
    progress: list[charts.Chart]


def home(snapshot: Snapshot) -> Home:
    scripts = entries(snapshot.state)
    progress = [
        charts.progress_chart(f"progress-{metric}", snapshot.rows, scripts, metric)
        for metric in ("bpb", "judge")
    ]
    return Home(
        snapshot=snapshot,
        facts=best_facts(snapshot),
        columns=shown(LEADERBOARD, snapshot.rows),
        progress=[chart for chart in progress if chart is not None],
    )


# ----- one experiment -----------------------------------------------------------------------


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """(css class, line) for a unified diff: file headers, hunks, additions, removals, context."""
    lines = []
    for line in diff.rstrip("\n").splitlines():
        if line.startswith(("+++", "---", "diff ", "index ")):
            css = "file"
        elif line.startswith("@@"):
            css = "hunk"
        elif line.startswith("+"):
            css = "add"
        elif line.startswith("-"):
            css = "del"
        else:
            css = "ctx"
        lines.append((css, line))
    return lines


@dataclass(frozen=True)
class Story:
    label: str
    prompt: str
    continuation: str
    finished: bool | None
    score: SampleScore | None


@dataclass(frozen=True)
class Beginning:
    """One fixed story beginning: this experiment's stories and the compared one's."""

    prompt: str
    ours: list[Story]
    theirs: list[Story]


def _stories(runs: list[RunState]) -> dict[str, list[Story]]:
    by_prompt: dict[str, list[Story]] = {}
    for run in runs:
        if run.evaluation is None:
            continue
        scores = {(s.prompt, s.seed): s for s in run.judgement.scores} if run.judgement else {}
        label = f"seed {run.seed}" + (f" · {run.setting}" if run.setting else "")
        for sample in run.evaluation.samples:
            text = sample.text
            continuation = text[len(sample.prompt) :] if text.startswith(sample.prompt) else text
            by_prompt.setdefault(sample.prompt, []).append(
                Story(
                    label=label,
                    prompt=sample.prompt if text.startswith(sample.prompt) else "",
                    continuation=continuation,
                    finished=sample.finished,
                    score=scores.get((sample.prompt, sample.seed)),
                )
            )
    return by_prompt


def beginnings(experiment: ExperimentState, other: ExperimentState | None) -> list[Beginning]:
    """This experiment's samples by beginning, each beside the other's for the same beginning."""
    ours = _stories(experiment.measured_runs)
    theirs = _stories(other.chosen_runs) if other else {}
    return [Beginning(prompt, stories, theirs.get(prompt, [])) for prompt, stories in ours.items()]


def compared_with(state: ResearchState, experiment: ExperimentState) -> ExperimentState | None:
    """What its verdict compared it with (the best then; nothing for a baseline or a failure), or,
    undecided, what it will be compared with."""
    decision = experiment.decision
    if decision is None:
        return state.reference(experiment.id)
    return state.experiments.get(decision.against) if decision.against else None


@dataclass(frozen=True)
class DifferenceRow:
    metric: str
    change: str
    p: str
    n: str
    verdict: str


def _difference_row(diff: Difference) -> DifferenceRow:
    return DifferenceRow(
        metric=diff.metric,
        change=difference(diff),
        p=p_value(diff.p_value),
        n=sizes(diff).removeprefix("n="),
        verdict=diff.verdict,
    )


@dataclass(frozen=True)
class ExperimentPage:
    snapshot: Snapshot
    experiment: ExperimentState
    verdict: str
    compared: ExperimentState | None
    differences: list[DifferenceRow]
    diff: list[tuple[str, str]]
    columns: list[Column[RunState]]
    runs: list[RunState]
    loss: charts.Chart | None
    judgements: list[tuple[RunState, JudgementRecord]]
    beginnings: list[Beginning]
    failures: list[tuple[RunState, str]]


def _curve(run: RunState) -> list[tuple[float, float]]:
    return [(p.elapsed_s, p.loss) for p in run.end.loss_curve] if run.end else []


def experiment_page(snapshot: Snapshot, experiment: ExperimentState) -> ExperimentPage:
    state = snapshot.state
    compared = compared_with(state, experiment)
    decision = experiment.decision
    comparison = decision.comparison if decision else None
    runs = list(experiment.runs.values())
    curves = [charts.Curve(f"seed {run.seed} {run.setting}".strip(), _curve(run)) for run in runs]
    if compared is not None and any(curve.points for curve in curves):
        curves += [
            charts.Curve(f"{compared.id} seed {run.seed}", _curve(run), reference=True)
            for run in compared.chosen_runs
        ]
    return ExperimentPage(
        snapshot=snapshot,
        experiment=experiment,
        verdict=verdict_text(
            decision.verdict if decision else None,
            bool(decision and decision.kept),
            decision.by if decision else "auto",
        ),
        compared=compared,
        differences=[
            _difference_row(d) for d in (comparison.bpb, comparison.judge) if d is not None
        ]
        if comparison
        else [],
        diff=diff_lines(experiment.proposal.diff if experiment.proposal else ""),
        columns=shown(RUNS, runs),
        runs=runs,
        loss=charts.loss_chart("loss", curves),
        judgements=[(run, run.judgement) for run in runs if run.judgement],
        beginnings=beginnings(experiment, compared),
        failures=[
            (run, run.end.log_tail)
            for run in runs
            if run.end and run.end.outcome != "ok" and run.end.log_tail.strip()
        ],
    )
