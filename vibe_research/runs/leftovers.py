"""Processes a dead orchestrator left behind: found by their run folder on the command line, killed.

The runner puts every run in its own session and kills it at the budget, but a SIGKILL of the
orchestrator kills nobody. The next `continue` calls this for each run that was started and
never recorded, before running it again.
"""

import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)


def processes_of(run_dir: Path) -> list[int]:
    """PIDs whose command line names `run_dir` (Linux /proc; empty elsewhere)."""
    needle = str(run_dir).encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def kill_leftovers(run_dir: Path) -> int:
    """SIGKILL each leftover process of `run_dir` and its process group; how many were found."""
    pids = processes_of(run_dir)
    for pid in pids:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
    if pids:
        log.warning(
            "killed %d process(es) an interrupted session left running in %s", len(pids), run_dir
        )
    return len(pids)
