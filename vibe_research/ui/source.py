"""Everything the dashboard reads from the research side, in one module.

The ledger is re-read only when the file changed (its size and modification time), so a page
polled every second costs a stat; the state is rebuilt by the same pure `rebuild_state` that
`continue` uses, so the dashboard shows exactly what the loop would see.
"""

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from vibe_research.llm.calllog import Totals, ledger_for
from vibe_research.research.loop.recovery import LOCK_FILE
from vibe_research.research.settings import Settings, load_settings
from vibe_research.research.state.experiments import (
    ExperimentState,
    LeaderboardRow,
    ResearchState,
    RunState,
    leaderboard,
    rebuild_state,
)
from vibe_research.research.state.ledger import JudgementRecord, SampleScore, read
from vibe_research.research.stats import Difference, Summary, sizes
from vibe_research.research.workspace import Workspace, find_workspace

# what the other ui modules take from the research side: through here, so paths change in one place
__all__ = [
    "Difference",
    "ExperimentState",
    "JudgementRecord",
    "LeaderboardRow",
    "ResearchState",
    "RunState",
    "SampleScore",
    "Snapshot",
    "Source",
    "Summary",
    "open_workspace",
    "sizes",
]

log = logging.getLogger(__name__)

# research.loop.exclusive writes the pid of the running `continue` here and removes it at the end
CONTINUE_LOCK = LOCK_FILE


@dataclass(frozen=True)
class Snapshot:
    """The workspace as one ledger reading left it."""

    workspace: Workspace
    settings: Settings
    state: ResearchState
    rows: list[LeaderboardRow]
    records: int  # how many records the ledger held: pages reload when it grows
    records_by_experiment: dict[str, int]
    torn_lines: list[int]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size


class Source:
    """The workspace's snapshot and LLM spend, each re-read only when its file changed. Thread-safe:
    the server answers requests from several threads."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._snapshot_stamp: tuple | None = None
        self._spend: Totals = Totals()
        self._spend_stamp: tuple | None = None

    def snapshot(self) -> Snapshot:
        """Raises UserError for a damaged ledger or settings file, saying what to do about it."""
        stamp = (_stamp(self.workspace.ledger), _stamp(self.workspace.settings_file))
        with self._lock:
            if self._snapshot is None or stamp != self._snapshot_stamp:
                self._snapshot = self._load()
                self._snapshot_stamp = stamp
            return self._snapshot

    def _load(self) -> Snapshot:
        settings = load_settings(self.workspace.settings_file)
        ledger = read(self.workspace.ledger)
        state = rebuild_state(ledger.records)
        counts: dict[str, int] = {}
        for record in ledger.records:
            if record.experiment is not None:  # session records belong to no experiment
                counts[record.experiment] = counts.get(record.experiment, 0) + 1
        log.debug("read %d ledger records", len(ledger.records))
        return Snapshot(
            workspace=self.workspace,
            settings=settings,
            state=state,
            rows=leaderboard(state, settings.research.confidence),
            records=len(ledger.records),
            records_by_experiment=counts,
            torn_lines=ledger.torn_lines,
        )

    def spend(self) -> Totals:
        """The LLM spend so far, from the workspace's call log."""
        stamp = _stamp(self.workspace.llm_log)
        with self._lock:
            if stamp != self._spend_stamp:
                self._spend = ledger_for(self.workspace.llm_log).totals()
                self._spend_stamp = stamp
            return self._spend

    def run_dir(self, run: str) -> Path:
        return self.workspace.runs / run

    def continue_pid(self) -> int | None:
        """The pid of the `vibe-research continue` working in this workspace, if one is alive."""
        try:
            text = (self.workspace.state / CONTINUE_LOCK).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not text.isdigit():
            return None
        try:
            os.kill(int(text), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return int(text)  # alive, under another user
        return int(text)


def open_workspace(start: Path | None = None) -> Source:
    """The workspace at or above `start`, its ledger read once so a damaged one fails at start."""
    source = Source(find_workspace(start))
    if not source.workspace.ledger.is_file():
        log.info(
            "%s: no ledger yet; the pages fill in as `continue` records", source.workspace.ledger
        )
    source.snapshot()
    return source
