"""Chart layout for the pages: data in, pixel positions out (templates/charts.html draws them).

Pure: no I/O and no markup here, so every label reaches the page through the template's
escaping. Two charts: training loss against seconds for an experiment's runs (the reference's
runs dashed), and the progress of mean bpb or judge score over experiments with intervals.
"""

import math
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal

from vibe_research.ui.source import LeaderboardRow, Summary

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 14, 44  # margins, pixels
MAX_X_LABELS = 24  # experiment numbers under the x axis before they are thinned out
RUN_COLOURS = 6  # css classes run-0 .. run-5, reused in turn

Shape = Literal["circle", "square", "diamond", "triangle", "down"]
# one marker per experiment script, as in the notes' progress figure
SCRIPT_SHAPES: dict[str, Shape] = {
    "train.py": "circle",
    "ngram.py": "square",
    "fusion.py": "diamond",
    "distill.py": "triangle",
}


@dataclass(frozen=True)
class Scale:
    """Maps data values in [low, high] onto pixels [start, end] (end < start for a y axis)."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low
        fraction = (value - self.low) / span if span else 0.5
        return round(self.start + fraction * (self.end - self.start), 1)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    if not high > low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda s: abs((high - low) / s - count))
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _tick_label(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    digits = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{digits}f}"


@dataclass(frozen=True)
class Tick:
    at: float  # pixel
    label: str


@dataclass(frozen=True)
class Line:
    points: str  # "x,y x,y ..." in pixels
    css: str
    label: str


@dataclass(frozen=True)
class Mark:
    """A point with an optional interval (pixel y of its ends), linked to its experiment page."""

    x: float
    y: float
    low: float | None
    high: float | None
    css: str
    shape: Shape
    title: str
    href: str

    @property
    def polygon(self) -> str:
        """The shape's outline for everything but a circle."""
        r = 5.0
        corners = {
            "square": [(-r, -r), (r, -r), (r, r), (-r, r)],
            "diamond": [(0, -r * 1.3), (r * 1.3, 0), (0, r * 1.3), (-r * 1.3, 0)],
            "triangle": [(0, -r * 1.2), (r * 1.2, r), (-r * 1.2, r)],
            "down": [(0, r * 1.2), (r * 1.2, -r), (-r * 1.2, -r)],
        }.get(self.shape, [])
        return " ".join(f"{self.x + dx:.1f},{self.y + dy:.1f}" for dx, dy in corners)


@dataclass(frozen=True)
class Chart:
    id: str  # unique on the page: names the clip path
    x_label: str
    y_label: str
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    lines: list[Line] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css, label)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def _y_scale(values: list[float]) -> tuple[Scale, list[Tick]]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.06 or abs(high) * 0.05 or 1.0
    ticks = nice_ticks(low - pad, high + pad)
    scale = Scale(low - pad, high + pad, HEIGHT - BOTTOM, TOP)
    return scale, [Tick(scale(t), _tick_label(t, ticks)) for t in ticks]


@dataclass(frozen=True)
class Curve:
    """One run's training loss: (seconds, loss) points."""

    label: str
    points: list[tuple[float, float]]
    reference: bool = False  # a run of what the experiment is measured against: dashed, grey


def loss_chart(chart_id: str, curves: list[Curve]) -> Chart | None:
    """Loss against training seconds. The first steps' loss is several times the last, so the
    y axis covers the losses after the first tenth of each run (earlier points are clipped)."""
    curves = [curve for curve in curves if curve.points]
    if not curves:
        return None
    tails = [loss for curve in curves for _, loss in curve.points[len(curve.points) // 10 :]]
    seconds = [t for curve in curves for t, _ in curve.points]
    x_ticks_at = nice_ticks(0.0, max(seconds) or 1.0)
    x = Scale(0.0, max(x_ticks_at[-1], max(seconds)) or 1.0, LEFT, WIDTH - RIGHT)
    y, y_ticks = _y_scale(tails)
    lines, legend, own = [], [], 0
    for curve in curves:
        css = "reference" if curve.reference else f"run-{own % RUN_COLOURS}"
        own += 0 if curve.reference else 1
        points = " ".join(f"{x(t)},{y(loss)}" for t, loss in curve.points)
        lines.append(Line(points=points, css=css, label=curve.label))
        legend.append((css, curve.label))
    return Chart(
        id=chart_id,
        x_label="training time (s)",
        y_label="training loss (nats per token)",
        x_ticks=[Tick(x(t), _tick_label(t, x_ticks_at)) for t in x_ticks_at],
        y_ticks=y_ticks,
        lines=lines,
        legend=legend,
    )


def _status(row: LeaderboardRow) -> str:
    if row.kept:
        return "kept"
    return "pending" if row.verdict is None else "discarded"


def _number(row: LeaderboardRow) -> int:
    head = row.experiment.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def _leader_values(rows: list[LeaderboardRow], metric: str) -> dict[str, float]:
    """Per experiment, the metric of the kept experiment with the lowest mean bpb up to it (in
    number order): the "best so far" line."""
    values, leader = {}, None
    for row in sorted(rows, key=_number):
        if row.kept and row.bpb and (leader is None or row.bpb.mean < leader.bpb.mean):
            leader = row
        summary = getattr(leader, metric) if leader else None
        values[row.experiment] = summary.mean if summary else math.nan
    return values


def _step_line(xs: list[float], ys: list[float], y: Scale) -> str:
    points: list[str] = []
    for index, (left, value) in enumerate(zip(xs, ys, strict=True)):
        if math.isnan(value):
            continue
        right = xs[index + 1] if index + 1 < len(xs) else left
        points += [f"{left},{y(value)}", f"{right},{y(value)}"]
    return " ".join(points)


def progress_chart(
    chart_id: str, rows: list[LeaderboardRow], entries: dict[str, str], metric: str
) -> Chart | None:
    """One mark per experiment measured on `metric` ("bpb" or "judge"), in number order, with its
    interval; filled when kept, hollow when discarded; the shape says which script it trained."""
    measured = sorted((row for row in rows if getattr(row, metric) is not None), key=_number)
    if not measured:
        return None
    summaries: list[Summary] = [getattr(row, metric) for row in measured]
    extent = [v for s in summaries for v in (s.mean, s.low, s.high) if v is not None]
    y, y_ticks = _y_scale(extent)
    slot = (WIDTH - RIGHT - LEFT) / len(measured)
    xs = [round(LEFT + slot * (index + 0.5), 1) for index in range(len(measured))]
    every = math.ceil(len(measured) / MAX_X_LABELS)
    digits = 4 if metric == "bpb" else 2
    marks = []
    for at, row, summary in zip(xs, measured, summaries, strict=True):
        interval = (
            f" [{summary.low:.{digits}f}, {summary.high:.{digits}f}]"
            if summary.low is not None and summary.high is not None
            else ""
        )
        marks.append(
            Mark(
                x=at,
                y=y(summary.mean),
                low=y(summary.low) if summary.low is not None else None,
                high=y(summary.high) if summary.high is not None else None,
                css=_status(row),
                shape=SCRIPT_SHAPES.get(PurePath(entries.get(row.experiment, "")).name, "down"),
                title=f"{row.experiment}: {metric} {summary.mean:.{digits}f}{interval}, "
                f"n={summary.n}, {_status(row)}",
                href=f"/experiments/{row.experiment}",
            )
        )
    leaders = _leader_values(rows, metric)
    best = _step_line(xs, [leaders[row.experiment] for row in measured], y)
    return Chart(
        id=chart_id,
        x_label="experiment",
        y_label="validation bpb (lower: better)"
        if metric == "bpb"
        else "judge, 1-10 (higher: better)",
        x_ticks=[
            Tick(at, str(_number(row)))
            for index, (at, row) in enumerate(zip(xs, measured, strict=True))
            if index % every == 0
        ],
        y_ticks=y_ticks,
        lines=[Line(points=best, css="leader", label="best so far")] if best else [],
        marks=marks,
        legend=[
            ("kept", "kept"),
            ("discarded", "discarded"),
            ("pending", "undecided"),
            ("leader", "best so far"),
        ],
    )
