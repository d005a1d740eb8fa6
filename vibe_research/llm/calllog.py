"""The workspace's LLM call log (`.vibe/llm-calls.jsonl`), and the spend ledger read from it.

The log holds one JSON line per HTTP call, whoever made it: the proposer's client, the judge's,
another process on the same workspace. Before each call a client asks the ledger for a ticket
with the call's worst-case cost; the ledger counts what the log holds (reading only what was
appended since it last looked) plus the tickets its process has out, and refuses one that could
pass llm.max_usd. So the cap holds for every client together. Two processes calling at the same
moment do not see each other's call in flight, and can pass the cap by one call's estimate each.
"""

import fcntl
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from vibe_research.llm.errors import BudgetExceeded

log = logging.getLogger(__name__)

LOG_FORMAT = 1
Mode = Literal["json_schema", "text"]


class Totals(BaseModel):
    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def summary(self) -> str:
        """One line for the user, e.g. `LLM: 3 calls (1 failed), 12,040 + 2,311 tokens, $0.0426`."""
        failed = f" ({self.failed_calls} failed)" if self.failed_calls else ""
        return f"LLM: {self.calls} calls{failed}, {self.prompt_tokens:,} + {self.completion_tokens:,} tokens, ${self.cost_usd:.4f}"

    def add(self, record: "CallRecord") -> None:
        self.calls += 1
        self.failed_calls += record.error is not None
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.cost_usd += record.cost_usd


class CallRecord(BaseModel):
    """One line of the call log."""

    v: int = LOG_FORMAT
    time: str
    model: str
    reply_schema: str
    mode: Mode
    attempt: int
    messages: list[dict[str, str]]
    response: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float


class SpendLedger:
    """What the workspace has spent, from its call log, and the calls of this process in flight."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._offset = 0  # bytes of the log counted so far
        self._lines = 0  # lines counted so far, to name a bad one
        self._totals = Totals()
        self._in_flight: dict[int, float] = {}  # ticket -> worst-case cost in USD
        self._tickets = itertools.count()

    def totals(self) -> Totals:
        with self._lock:
            self._catch_up()
            return self._totals.model_copy()

    def reserve(self, estimate_usd: float, cap_usd: float | None) -> int:
        """A ticket for one call that costs at most `estimate_usd`; BudgetExceeded where the
        spend so far, the calls in flight and this one could pass `cap_usd`."""
        with self._lock:
            self._catch_up()
            spent = self._totals.cost_usd
            in_flight = sum(self._in_flight.values())
            if cap_usd is not None and spent + in_flight + estimate_usd > cap_usd:
                flying = f" and ${in_flight:.4f} in calls under way" if in_flight else ""
                raise BudgetExceeded(
                    f"llm.max_usd = ${cap_usd:g} would be passed: ${spent:.4f} spent by this workspace{flying} "
                    f"(see {self.path}), next call up to ${estimate_usd:.4f}; raise llm.max_usd in vibe-research.toml",
                    spent_usd=spent,
                    estimate_usd=estimate_usd,
                )
            ticket = next(self._tickets)
            self._in_flight[ticket] = estimate_usd
            return ticket

    def record(self, record: CallRecord, ticket: int | None) -> None:
        """Append `record` to the log on a line of its own and give back its ticket."""
        line = (record.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as handle:
                # One writer at a time, across processes, so the check for a torn last line and
                # the write that follows it are one step.
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                end = handle.seek(0, os.SEEK_END)
                if end:
                    handle.seek(end - 1)
                    if handle.read(1) != b"\n":
                        line = b"\n" + line  # a killed writer's torn line stays a line of its own
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._in_flight.pop(ticket, None)

    def release(self, ticket: int) -> None:
        """Give back a ticket whose call never reached the server."""
        with self._lock:
            self._in_flight.pop(ticket, None)

    def _catch_up(self) -> None:
        """Count the lines appended since the last look; a last line without its newline is
        still being written (or was torn by a killed writer) and waits for the next look."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self._offset:
            log.warning("%s is shorter than when last read; counting it again", self.path)
            self._offset, self._lines, self._totals = 0, 0, Totals()
        if size == self._offset:
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read(size - self._offset)
        complete = chunk.rfind(b"\n") + 1
        for raw in chunk[:complete].splitlines():
            self._lines += 1
            if not raw.strip():
                continue
            try:
                self._totals.add(CallRecord.model_validate_json(raw))
            except ValidationError:
                log.warning("%s:%d: unreadable call record skipped", self.path, self._lines)
        self._offset += complete


_ledgers: dict[Path, SpendLedger] = {}
_ledgers_lock = threading.Lock()


def ledger_for(path: Path) -> SpendLedger:
    """The one ledger of this process for the call log at `path`, shared by all its clients."""
    key = path.resolve()
    with _ledgers_lock:
        return _ledgers.setdefault(key, SpendLedger(key))
