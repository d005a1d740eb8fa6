"""Reading a run's output: JSON-line events into a summary, everything else into a bounded log."""

import json
import math
import threading
from collections import deque
from collections.abc import Callable

from vibe_research.lm.events import Event, parse_event
from vibe_research.runs.result import EventSummary

MAX_EVENTS = 20_000  # a run printing more keeps the last ones; the summary still sees all
MAX_LOG_LINES = 5_000
TAIL_LINES = 40

OnEvent = Callable[[str, dict], None]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class OutputRecorder:
    """Fed line by line from the reader threads of one process; thread-safe."""

    def __init__(self, run_id: str, on_event: OnEvent | None = None) -> None:
        self.run_id = run_id
        self.on_event = on_event
        self.summary = EventSummary()
        self.events: deque[dict] = deque(maxlen=MAX_EVENTS)
        self.log: deque[str] = deque(maxlen=MAX_LOG_LINES)
        self.nan_seen = False
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
        if self.on_event:
            self.on_event(self.run_id, data)

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
