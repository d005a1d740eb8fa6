"""Reading a run's output: JSON-line events into a summary, everything else into a bounded log,
and a live trace of the events in the run folder for whoever watches (`vibe-research ui`)."""

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vibe_research.lm.events import Event, parse_event
from vibe_research.runs.result import EventSummary

MAX_EVENTS = 20_000  # a run printing more keeps the last ones; the summary still sees all
MAX_LOG_LINES = 5_000
TAIL_LINES = 40

LIVE_TRACE = "live.jsonl"
LIVE_VERSION = 1
LIVE_STEP_INTERVAL_S = 0.5  # a watcher polls every second or so; more step lines only cost disk
LIVE_MAX_BYTES = 32 * 2**20  # past this only phase lines are written: the trace cannot fill a disk
LIVE_MAX_LINE_BYTES = 64 * 2**10  # a bigger event (a huge sample) is left out of the trace

OnEvent = Callable[[str, dict], None]

log = logging.getLogger(__name__)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class LiveLine(BaseModel):
    """One line of RUN_DIR/live.jsonl: an event as the orchestrator received it, and when.

    `event` is the training's own event (untrusted: the trainer chose its fields) or the runner's
    `{"event": "status", "phase": "describe" | "train" | "evaluate"}`.
    """

    model_config = ConfigDict(extra="forbid")
    v: int = LIVE_VERSION
    t: float  # unix seconds on the orchestrator's clock
    event: dict


class LiveTrace:
    """RUN_DIR/live.jsonl, appended by the orchestrator (never by the sandboxed trainer) as events
    arrive, so a run can be watched from another process while it runs. Each write opens, appends
    and closes the file, with no fsync: a trace to watch, not a record (result.json and the ledger
    are). Step events are thinned to one per LIVE_STEP_INTERVAL_S, and the file is capped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written = 0
        self._last_step = -math.inf
        self._broken = False
        self._lock = threading.Lock()
        self._append(b"", mode="wb")  # a new attempt starts a new trace

    def write(self, event: dict) -> None:
        now = time.time()
        kind = event.get("event")
        with self._lock:
            if kind == "step":
                if now - self._last_step < LIVE_STEP_INTERVAL_S:
                    return
                self._last_step = now
            line = (LiveLine(t=now, event=event).model_dump_json() + "\n").encode("utf-8")
            if kind != "status" and (
                len(line) > LIVE_MAX_LINE_BYTES or self._written + len(line) > LIVE_MAX_BYTES
            ):
                return
            self._append(line)

    def _append(self, data: bytes, mode: str = "ab") -> None:
        """Called from the threads that read the trainer's pipes: a failure here must not stop
        them (the trainer would block on a full pipe), so a trace that cannot be written stops."""
        if self._broken:
            return
        try:
            with self.path.open(mode) as handle:
                handle.write(data)
        except OSError as exc:
            self._broken = True
            log.warning("%s: live trace stopped (%s); the run goes on", self.path, exc)
            return
        self._written += len(data)


class OutputRecorder:
    """Fed line by line from the reader threads of one process; thread-safe."""

    def __init__(self, run_id: str, on_event: OnEvent | None = None) -> None:
        self.run_id = run_id
        self.on_event = on_event
        self.summary = EventSummary()
        self.events: deque[dict] = deque(maxlen=MAX_EVENTS)
        self.log: deque[str] = deque(maxlen=MAX_LOG_LINES)
        self.nan_seen = False
        self.trace: LiveTrace | None = None
        self._lock = threading.Lock()

    def stdout_line(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            self.log_line(line)
            return
        data = event.model_dump()
        with self._lock:
            self.events.append(data)
            self._update(event)
        if self.trace:
            self.trace.write(data)
        if self.on_event:
            self.on_event(self.run_id, data)

    def status(self, run_dir: Path, phase: str) -> None:
        """The run's phase, to the callback and into RUN_DIR/live.jsonl. The first call starts
        that trace, which from then on also gets every event as it arrives (see LiveTrace)."""
        event = {"event": "status", "phase": phase}
        if self.trace is None:
            self.trace = LiveTrace(run_dir / LIVE_TRACE)
        self.trace.write(event)
        if self.on_event:
            self.on_event(self.run_id, event)

    def log_line(self, line: str) -> None:
        with self._lock:
            self.log.append(line.rstrip("\n"))

    def _update(self, event: Event) -> None:
        fields, summary = event.model_dump(), self.summary
        for key in ("params", "device", "dtype"):
            if fields.get(key) is not None:
                setattr(summary, key, fields[key])
        if (steps := _number(fields.get("step", fields.get("steps")))) is not None:
            summary.steps = int(steps)
        if (tokens := _number(fields.get("tokens"))) is not None:
            summary.tokens = int(tokens)
        # Training throughput: the step events' figure; a `done` figure may count start-up too.
        if event.event == "step" and (speed := _number(fields.get("tokens_per_s"))) is not None:
            summary.tokens_per_s = speed
        if event.event == "step" and "loss" in fields:
            loss = _number(fields["loss"])
            # A NaN loss arrives as NaN (json) or null (lm.events turns NaN tensors into None).
            if loss is None or not math.isfinite(loss):
                self.nan_seen = True
            summary.loss_curve.append(
                (
                    _number(fields.get("elapsed_s")) or 0.0,
                    summary.steps,
                    loss if loss is not None and math.isfinite(loss) else None,
                )
            )
        if event.event == "done":
            summary.done = True
            if summary.tokens_per_s is None:
                elapsed = _number(fields.get("elapsed_s"))
                summary.tokens_per_s = _number(fields.get("tokens_per_s")) or (
                    summary.tokens / elapsed if elapsed else None
                )

    def tail(self, lines: int = TAIL_LINES) -> str:
        with self._lock:
            return "\n".join(list(self.log)[-lines:])

    def events_jsonl(self) -> str:
        with self._lock:
            return "".join(json.dumps(event) + "\n" for event in self.events)

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self.log) + "\n"
