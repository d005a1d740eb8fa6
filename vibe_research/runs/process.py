"""Supervising one sandboxed process: stream its output, enforce its time and run-folder limits
from outside, and make sure no process of it survives (its group, and its cgroups where present).
"""

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from vibe_research.sandbox.command import SandboxedCommand

log = logging.getLogger(__name__)

POLL_S = 0.1  # how soon an ended process or a passed deadline is seen
SIZE_CHECK_S = 0.5  # the run folder size walk: bounds how far past run_dir_gb a disk filler gets
STRAGGLER_WAIT_S = 2.0  # children get this long to exit after the main process has ended
LINE_LIMIT = (
    1 << 16
)  # bytes; a longer line arrives in pieces, so output without newlines stays bounded

Stop = Literal["budget", "interrupt", "run_dir_cap", "requested"]


@dataclass
class ProcessEnd:
    exit_code: int | None  # negative: killed by that signal
    stopped: Stop | None  # why the supervisor stopped it, if it did
    survivors: int  # processes still alive after the main one ended (all killed)
    oom_kills: int
    wall_s: float


def folder_bytes(folder: Path) -> int:
    """Disk blocks used under `folder` (sparse files count for what they really occupy)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue  # removed while we walked
    return total


def group_members(pgid: int) -> set[int]:
    """Processes whose process group is `pgid` (from /proc; fields after the command name)."""
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                members.add(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(pgid, sig)


def _read_lines(stream: IO[bytes], handle: Callable[[str], None]) -> None:
    for raw in iter(lambda: stream.readline(LINE_LIMIT), b""):
        handle(raw.decode("utf-8", errors="replace"))
    stream.close()


def _kill_survivors(pgid: int, command: SandboxedCommand) -> int:
    """Give children a moment to finish, then SIGKILL whatever of the run is left; how many."""
    deadline = time.monotonic() + STRAGGLER_WAIT_S
    while (
        left := group_members(pgid) | (command.cgroups.pids() if command.cgroups else set())
    ) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if left:
        _signal_group(pgid, signal.SIGKILL)
        command.kill_all()
        log.warning("killed %d process(es) the run left behind", len(left))
    return len(left)


def supervise(
    command: SandboxedCommand,
    cwd: Path,
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
    limit_s: float,
    kill_after_s: float,
    run_dir: Path,
    run_dir_cap: int,
    stop: threading.Event | None = None,
    pass_fds: tuple[int, ...] = (),
) -> ProcessEnd:
    """Run `command` to its end, feeding its output lines to the callbacks.

    SIGTERM to its group at `limit_s`, SIGKILL `kill_after_s` later; SIGKILL at once when
    `run_dir` grows past `run_dir_cap` bytes; Ctrl-C stops it and returns stopped="interrupt".
    Setting `stop` asks it to end early: SIGTERM (stopped="requested"), SIGKILL `kill_after_s` later.
    `pass_fds` are handed to the process and closed here once it has started.
    """
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            command.argv,
            cwd=cwd,
            env=command.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    finally:
        for fd in pass_fds:
            os.close(fd)
    readers = [
        threading.Thread(target=_read_lines, args=(proc.stdout, on_stdout), daemon=True),
        threading.Thread(target=_read_lines, args=(proc.stderr, on_stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    stopped: Stop | None = None
    terminated_at: float | None = None
    next_size_check = started
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if stopped is None and now - started > limit_s:
                stopped, terminated_at = "budget", now
                _signal_group(proc.pid, signal.SIGTERM)
            elif stopped is None and stop is not None and stop.is_set():
                stopped, terminated_at = "requested", now
                _signal_group(proc.pid, signal.SIGTERM)
            if terminated_at is not None and now - terminated_at > kill_after_s:
                _signal_group(proc.pid, signal.SIGKILL)
            if now >= next_size_check:
                next_size_check = now + SIZE_CHECK_S
                if stopped is None and folder_bytes(run_dir) > run_dir_cap:
                    stopped = "run_dir_cap"
                    _signal_group(proc.pid, signal.SIGKILL)
                    command.kill_all()
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        stopped = "interrupt"
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=min(kill_after_s, 3.0))
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        survivors = _kill_survivors(proc.pid, command)
        for reader in readers:
            reader.join(timeout=5)
    if stopped is None and folder_bytes(run_dir) > run_dir_cap:
        stopped = "run_dir_cap"  # filled faster than the checks ran
    return ProcessEnd(
        proc.returncode, stopped, survivors, command.oom_kills(), time.monotonic() - started
    )
