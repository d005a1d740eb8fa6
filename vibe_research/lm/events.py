"""Run events: a training process reports progress as JSON lines on stdout (DESIGN.md, "Run events").

Anything on stdout that is not such a line is log text, kept as it is.
"""

import json
import math
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

EVENTS = frozenset({"start", "step", "eval", "sample", "done"})


class Event(BaseModel):
    """One parsed event line: `event` plus whatever fields the emitter gave."""

    model_config = ConfigDict(extra="allow", frozen=True)
    event: str


def emit(event: str, **fields: Any) -> None:
    """Write one `{"event": ..., **fields}` line to stdout and flush, so the runner sees it at once."""
    if event not in EVENTS:
        raise ValueError(f"unknown run event {event!r}; use one of {sorted(EVENTS)}")
    sys.stdout.write(json.dumps({"event": event, **fields}, default=_plain) + "\n")
    sys.stdout.flush()


def parse_event(line: str) -> Event | None:
    """The event on a stdout line, or None when the line is ordinary log text."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("event") not in EVENTS:
        return None
    return Event.model_validate(data)


def _plain(value: Any) -> Any:
    """JSON for numpy/torch scalars (`.item()`), paths and tuples-like values from training code."""
    if hasattr(value, "item"):
        item = value.item()
        return None if isinstance(item, float) and math.isnan(item) else item
    if isinstance(value, Path):
        return str(value)
    raise TypeError(
        f"run event field of type {type(value).__name__} is not JSON; pass numbers, strings, lists, dicts"
    )
