"""The runs in progress, read from the run folders' live traces (runs.events.LiveTrace).

A run is in progress while the ledger has its start and not its end. Its folder says how far it
got: no trace yet (queued behind the proposal's other runs), a trace whose last phase line says
describe, train or evaluate, or a result.json (finished; `continue` records the ends of a
proposal's runs together, after the last one). Traces are read incrementally: each poll reads
only the bytes appended since the last one.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from vibe_research.runs.events import LIVE_TRACE, LIVE_VERSION, LiveLine
from vibe_research.runs.result import RunResult
from vibe_research.ui.source import ExperimentState, RunState, Snapshot, Source

log = logging.getLogger(__name__)

CURVE_POINTS = 200  # per run in a poll's answer: enough for a sparkline, a few kilobytes

Phase = Literal["queued", "remote", "describe", "train", "evaluate", "finished", "stopped"]
TRACED_PHASES: dict[object, Phase] = {
    "describe": "describe",
    "train": "train",
    "evaluate": "evaluate",
}


def _number(value: object) -> float | None:
    """A finite number from an event field, which the (untrusted) trainer chose."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Trace:
    """What one run's trace said so far."""

    offset: int = 0  # bytes of the file already read
    phase: Phase | None = None
    train_t: float | None = None  # unix seconds the training process was started
    last_t: float | None = None
    step: int | None = None
    loss: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    curve: list[tuple[float, float]] = field(default_factory=list)  # (training seconds, loss)

    def fold(self, line: LiveLine) -> None:
        event, self.last_t = line.event, line.t
        kind = event.get("event")
        if kind == "status":
            self.phase = TRACED_PHASES.get(event.get("phase"), self.phase)
            if self.phase == "train" and self.train_t is None:
                self.train_t = line.t
            return
        if kind not in ("step", "done"):
            return
        if (step := _number(event.get("step", event.get("steps")))) is not None:
            self.step = int(step)
        if (tokens := _number(event.get("tokens"))) is not None:
            self.tokens = int(tokens)
        if kind == "step":
            self.tokens_per_s = _number(event.get("tokens_per_s")) or self.tokens_per_s
            if (loss := _number(event.get("loss"))) is not None:
                self.loss = loss
                seconds = _number(event.get("elapsed_s"))
                if seconds is None and self.train_t is not None:
                    seconds = line.t - self.train_t
                self.curve.append((seconds or 0.0, loss))


def read_new_lines(path: Path, trace: Trace) -> Trace:
    """`trace` advanced by the complete lines appended to `path` since it was last read; a file
    shorter than what was read is a new attempt, read from its start."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return trace
    if size < trace.offset:
        trace = Trace()
    with path.open("rb") as handle:
        handle.seek(trace.offset)
        data = handle.read(size - trace.offset)
    complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
    trace.offset += len(complete)
    for raw in complete.splitlines():
        try:
            line = LiveLine.model_validate_json(raw)
        except ValidationError:
            log.debug("%s: skipped an unreadable trace line", path)
            continue
        if line.v > LIVE_VERSION:
            log.debug("%s: trace format v%d is newer than this vibe-research", path, line.v)
            continue
        trace.fold(line)
    return trace


def thin(points: list[tuple[float, float]], limit: int = CURVE_POINTS) -> list[tuple[float, float]]:
    """Evenly spaced points, the last always kept."""
    if len(points) <= limit:
        return points
    stride = len(points) / (limit - 1)
    return [points[int(i * stride)] for i in range(limit - 1)] + [points[-1]]


class LiveRun(BaseModel):
    run: str
    experiment: str
    title: str
    seed: int | None
    setting: str
    budget_s: float | None
    phase: Phase
    outcome: str | None = None  # once finished
    reason: str = ""
    step: int | None = None
    loss: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    train_s: float | None = None  # seconds since training started, while it trains
    left_s: float | None = None  # of the budget, while training
    heard_s: float | None = None  # since the trace's last line
    curve: list[tuple[float, float]] = []


class Spend(BaseModel):
    calls: int
    failed_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    max_usd: float | None
    summary: str


class Working(BaseModel):
    experiment: str
    title: str


class LiveView(BaseModel):
    """What /api/live answers: everything that changes while `continue` works."""

    now: float
    records: int
    records_by_experiment: dict[str, int]
    continue_pid: int | None
    working: Working | None  # the experiment without a decision yet
    runs: list[LiveRun]
    spend: Spend
    torn_lines: list[int]


class Watcher:
    """Keeps each in-progress run's trace between polls; thread-safe."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._traces: dict[str, Trace] = {}
        self._lock = threading.Lock()

    def view(self) -> LiveView:
        snapshot = self.source.snapshot()
        now, pid = time.time(), self.source.continue_pid()
        runs = []
        with self._lock:
            in_progress = {
                run.run: (experiment, run)
                for experiment in snapshot.state.experiments.values()
                for run in experiment.runs.values()
                if run.start is not None and run.end is None
            }
            self._traces = {key: self._traces[key] for key in in_progress if key in self._traces}
            for experiment, run in in_progress.values():
                runs.append(self._live_run(snapshot, experiment, run, now, pid))
        open_experiment = snapshot.state.open_experiment
        spend = self.source.spend()
        return LiveView(
            now=now,
            records=snapshot.records,
            records_by_experiment=snapshot.records_by_experiment,
            continue_pid=pid,
            working=Working(experiment=open_experiment.id, title=open_experiment.title)
            if open_experiment
            else None,
            runs=runs,
            spend=Spend(
                **spend.model_dump(),
                max_usd=snapshot.settings.llm.max_usd,
                summary=spend.summary(),
            ),
            torn_lines=snapshot.torn_lines,
        )

    def _live_run(
        self,
        snapshot: Snapshot,
        experiment: ExperimentState,
        run: RunState,
        now: float,
        pid: int | None,
    ) -> LiveRun:
        folder = self.source.run_dir(run.run)
        trace = read_new_lines(folder / LIVE_TRACE, self._traces.get(run.run, Trace()))
        self._traces[run.run] = trace
        live = LiveRun(
            run=run.run,
            experiment=experiment.id,
            title=experiment.title,
            seed=run.seed,
            setting=run.setting,
            budget_s=run.start.budget_s,
            phase=self._phase(snapshot, folder, trace, pid),
            step=trace.step,
            loss=trace.loss,
            tokens=trace.tokens,
            tokens_per_s=trace.tokens_per_s,
            heard_s=now - trace.last_t if trace.last_t else None,
            curve=thin(trace.curve),
        )
        if live.phase == "finished":
            result = RunResult.model_validate_json((folder / "result.json").read_text("utf-8"))
            live.outcome, live.reason = result.outcome, result.reason
        if trace.train_t is not None and live.phase == "train":
            live.train_s = now - trace.train_t
            live.left_s = max(0.0, run.start.budget_s - live.train_s)
        return live

    @staticmethod
    def _phase(snapshot: Snapshot, folder: Path, trace: Trace, pid: int | None) -> Phase:
        if (folder / "result.json").is_file():
            return "finished"
        if pid is None:
            return "stopped"  # nothing is running it: `continue` records it when it resumes
        if trace.phase is not None:
            return trace.phase
        return "remote" if snapshot.settings.train.executor == "ray" else "queued"
