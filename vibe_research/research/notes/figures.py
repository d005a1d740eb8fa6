"""Figures for the notes (matplotlib, Agg): loss curves per experiment and the progress chart.

Drawn from the research state alone, so `vibe-research report` redraws them from the ledger.
"""

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vibe_research.lm.atomic import write_bytes
from vibe_research.research.stats import summarize

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from vibe_research.research.state.experiments import ExperimentState, ResearchState

log = logging.getLogger(__name__)

PROGRESS_FIGURE = "progress.png"
KEPT, DISCARDED, PENDING = "#1b7f3b", "#c0392b", "#7f8c8d"


def loss_figure_name(experiment_id: str) -> str:
    return f"{experiment_id}-loss.png"


def has_loss_curves(experiment: "ExperimentState") -> bool:
    return any(run.end and run.end.loss_curve for run in experiment.runs.values())


def _save(figure: "Figure", path: Path) -> bool:
    """PNG without a timestamp or version stamp, so the same state draws the same bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    data = buffer.getvalue()
    if path.exists() and path.read_bytes() == data:
        return False
    write_bytes(path, data)
    return True


def _plot_runs(
    axes: "Axes", experiment: "ExperimentState", color: str, label: str, style: str
) -> list[float]:
    """One line per run, one legend entry per experiment; returns the losses after the first tenth of training."""
    runs = [run for run in experiment.runs.values() if run.end and run.end.loss_curve]
    tails: list[float] = []
    for index, run in enumerate(runs):
        curve = run.end.loss_curve if run.end else []
        axes.plot(
            [p.elapsed_s for p in curve],
            [p.loss for p in curve],
            style,
            color=color,
            linewidth=1.3,
            alpha=0.85,
            label=f"{label} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
            if index == 0
            else None,
        )
        tails += [p.loss for p in curve[len(curve) // 10 :]]
    return tails


def draw_loss_curves(
    experiment: "ExperimentState", best: "ExperimentState | None", path: Path
) -> bool:
    """Training loss against wall-clock seconds for each run, the current best's runs dashed in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    try:
        tails = _plot_runs(axes, experiment, "#2c6fbb", experiment.id, "-")
        if best is not None and best.id != experiment.id:
            tails += _plot_runs(axes, best, PENDING, f"best: {best.id}", "--")
        if tails:
            # the first steps' loss is several times the final one; zoom on where runs differ
            spread = max(tails) - min(tails)
            axes.set_ylim(min(tails) - 0.05 * spread, max(tails) + 0.05 * spread)
        axes.set_xlabel("training time (s)")
        axes.set_ylabel("training loss (nats per token)")
        axes.set_title(f"{experiment.title}: loss curves", fontsize=11)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, frameon=False)
        return _save(figure, path)
    finally:
        plt.close(figure)


@dataclass(frozen=True)
class _Point:
    number: int
    mean: float
    half: float  # half the 95% interval (0 for one seed)
    colour: str  # kept, discarded or undecided
    marker: str  # by experiment script


# one marker per experiment script, so a transformer change and an n-gram sweep read apart
SCRIPT_MARKERS = {"train.py": "o", "ngram.py": "s", "fusion.py": "D", "distill.py": "^"}
OTHER_MARKER = "v"


def _marker(entry: str) -> str:
    return SCRIPT_MARKERS.get(Path(entry).name, OTHER_MARKER)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _leaders(state: "ResearchState") -> list[tuple[int, "ExperimentState"]]:
    """(experiment number, the kept experiment with the lowest mean bpb up to it): the best so far."""
    leaders: list[tuple[int, ExperimentState]] = []
    best = None
    for experiment in sorted(state.experiments.values(), key=lambda e: e.number):
        decision = experiment.decision
        if (
            decision
            and decision.kept
            and experiment.bpbs
            and (best is None or _mean(experiment.bpbs) < _mean(best.bpbs))
        ):
            best = experiment
        if best is not None and experiment.bpbs:
            leaders.append((experiment.number, best))
    return leaders


def _progress_points(state: "ResearchState", metric: str) -> list[_Point]:
    """One point per measured experiment: its mean over seeds, the interval, kept or not, its script."""
    points = []
    for experiment in state.experiments.values():
        values = experiment.bpbs if metric == "bpb" else experiment.judge_scores
        if not values:
            continue
        summary = summarize(values)
        half = (summary.high - summary.mean) if summary.high is not None else 0.0
        decision = experiment.decision
        colour = PENDING if decision is None else KEPT if decision.kept else DISCARDED
        points.append(
            _Point(experiment.number, summary.mean, half, colour, _marker(experiment.entry))
        )
    return points


def _label(experiment: "ExperimentState", width: int = 40) -> str:
    """The x-axis label: the number and the title, a sweep's best setting, a baseline as such."""
    baseline = experiment.proposal is not None and experiment.proposal.source == "baseline"
    title = "baseline" if baseline else experiment.title
    if experiment.is_sweep and experiment.chosen:
        title = f"{title} ({experiment.chosen})"
    return f"{experiment.number} {title if len(title) <= width else title[: width - 1] + '…'}"


def _draw_metric(
    axes: "Axes", points: list[_Point], label: str, line: list[tuple[int, float]]
) -> None:
    for point in points:
        hollow = point.colour != KEPT
        axes.errorbar(
            point.number,
            point.mean,
            yerr=point.half or None,
            fmt=point.marker,
            color=point.colour,
            markerfacecolor="white" if hollow else point.colour,
            markersize=7,
            capsize=3,
            linewidth=1.2,
        )
    if line:
        axes.step(
            [n for n, _ in line],
            [v for _, v in line],
            where="post",
            color=KEPT,
            alpha=0.4,
            linewidth=1.5,
        )
    axes.set_ylabel(label)
    axes.grid(alpha=0.3)
    axes.margins(x=0.06, y=0.12)


def draw_progress(state: "ResearchState", path: Path) -> bool:
    """bpb (top) and judge score (bottom) per experiment: kept filled, discarded hollow red, one
    marker per script; the line is the best bpb so far (and that experiment's judge score)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    measured = sorted((e for e in state.experiments.values() if e.bpbs), key=lambda e: e.number)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(7.5, 0.55 * len(measured) + 3), 6.4), sharex=True, layout="constrained"
    )
    try:
        leaders = _leaders(state)
        bpb_line = [(number, _mean(leader.bpbs)) for number, leader in leaders]
        judge_line = [
            (number, _mean(leader.judge_scores))
            for number, leader in leaders
            if leader.judge_scores
        ]
        _draw_metric(
            top, _progress_points(state, "bpb"), "validation bpb (lower: better)", bpb_line
        )
        _draw_metric(
            bottom, _progress_points(state, "judge"), "judge, 1-10 (higher: better)", judge_line
        )
        bottom.set_xticks(
            [e.number for e in measured],
            [_label(e) for e in measured],
            rotation=35,
            ha="right",
            fontsize=7.5,
        )
        bottom.set_xlabel("experiment")
        top.set_title("Progress: mean over seeds with 95% t intervals", fontsize=11)
        handles = [
            Line2D([], [], marker="o", linestyle="", color=KEPT, label="kept"),
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=DISCARDED,
                markerfacecolor="white",
                label="discarded",
            ),
            Line2D([], [], color=KEPT, alpha=0.4, label="best so far"),
        ]
        if any(point.colour == PENDING for point in _progress_points(state, "bpb")):
            handles.insert(
                2,
                Line2D(
                    [],
                    [],
                    marker="o",
                    linestyle="",
                    color=PENDING,
                    markerfacecolor="white",
                    label="undecided",
                ),
            )
        scripts = sorted({Path(e.entry).name for e in measured})
        handles += [
            Line2D([], [], marker=_marker(name), linestyle="", color="#555555", label=name)
            for name in scripts
        ]
        figure.legend(
            handles=handles,
            fontsize=8,
            frameon=False,
            ncol=len(handles),
            loc="outside upper center",
        )
        return _save(figure, path)
    finally:
        plt.close(figure)


def _reference(state: "ResearchState", experiment: "ExperimentState") -> "ExperimentState | None":
    """The best the experiment was judged against (the current best while it is undecided)."""
    decision = experiment.decision
    if decision:
        return state.experiments.get(decision.against) if decision.against else None
    return state.reference(experiment.id)


def render_figures(figures: Path, state: "ResearchState") -> list[Path]:
    """Draw every figure the notes embed into `figures`; returns the files that changed."""
    changed = []
    measured = [e for e in state.experiments.values() if e.bpbs]
    if measured and draw_progress(state, figures / PROGRESS_FIGURE):
        changed.append(figures / PROGRESS_FIGURE)
    for experiment in state.experiments.values():
        path = figures / loss_figure_name(experiment.id)
        if has_loss_curves(experiment) and draw_loss_curves(
            experiment, _reference(state, experiment), path
        ):
            changed.append(path)
    log.debug("figures: %d file(s) changed", len(changed))
    return changed
