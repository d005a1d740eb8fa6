"""The model process: the side of an evaluation that runs experiment code, and nothing else.

    python -m vibe_research.lm.serve --entry FILE --run-dir DIR --control-fd N [--scratch DIR]

This parent never imports the experiment. For every session the scorer opens it forks a fresh
child that loads the model (vibe_research.lm.answer) and answers that session alone; when the
scorer closes the session the parent kills the child and everything the child started (it is
their subreaper), and empties `--scratch`, the one folder the sandbox lets the model process
write. So no answer comes from a process state that saw an earlier session. The parent cannot be
reached by its children either: it is not dumpable (no ptrace, no /proc/PID/mem), holds no
memory shared with them, and never reads a request (session sockets go straight to the child).

torch is imported here, before any fork, so each child starts warm; no torch computation runs in
the parent, so every child builds its own OpenMP thread pool, and CUDA (which cannot cross a
fork) is first touched in the child that loads the model. Per-session cost: the fork and the
model's own `load_model` (for a CUDA model, creating its CUDA context too).
"""

import argparse
import contextlib
import ctypes
import logging
import os
import platform
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path

from vibe_research.lm.protocol import (
    TO_MODEL_CONTROL,
    Close,
    Closed,
    Hello,
    Open,
    Opened,
    PeerClosed,
    ProtocolError,
    receive,
    send,
)

log = logging.getLogger(__name__)

_PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 4, 36
REAP_POLL_S = 0.005  # one fork per request: a slow poll would add up over ~130 requests


def protect() -> None:
    """Linux: adopt every orphan of the sessions (so none outlives one) and forbid being traced."""
    if platform.system() != "Linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for option in (_PR_SET_CHILD_SUBREAPER, _PR_SET_DUMPABLE):
        value = 1 if option == _PR_SET_CHILD_SUBREAPER else 0
        if libc.prctl(option, value, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def children(parent: int) -> list[int]:
    """Live (not zombie) processes whose parent is `parent`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended while we looked
            if int(fields[1]) == parent and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def end_session(pid: int, wait_s: float) -> str:
    """Let the session's process end on its own for up to `wait_s`, then kill it and every process
    left under this one; reap them all. How the session's process ended."""
    ended = None
    deadline = time.monotonic() + wait_s
    while ended is None and time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            ended = _ended(status)
        else:
            time.sleep(REAP_POLL_S)
    while True:
        while True:
            try:
                done, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                done = 0
            if not done:
                break
            if done == pid and ended is None:
                ended = _ended(status)
        left = children(os.getpid())
        if not left:
            break
        for child in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        time.sleep(REAP_POLL_S)
    if ended is None:
        ended = "killed"
    return ended


def _wipe(folder: Path) -> None:
    # A session may have made folders unwritable (chmod 000): open them up, then delete.
    for root, dirs, _ in os.walk(folder):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def session_folder(scratch: Path | None) -> Path:
    """HOME and TMPDIR of the next session: inside the sandbox's scratch, else a new temp folder."""
    folder = Path(tempfile.mkdtemp(prefix="session-", dir=scratch))
    (folder / "home").mkdir()
    return folder


def start_session(
    sock_fd: int, control: socket.socket, entry: Path, run_dir: Path, folder: Path
) -> int:
    """Fork the child that answers one session on `sock_fd`; its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(sock_fd)
        return pid
    code = 0
    try:
        control.close()  # the child never talks to, or hears, the parent's conversation
        os.environ["TMPDIR"], os.environ["HOME"] = str(folder), str(folder / "home")
        tempfile.tempdir = None
        from vibe_research.lm.answer import answer

        answer(socket.socket(fileno=sock_fd), entry, run_dir)
    except BaseException:
        log.exception("the session ended with an error")
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(control: socket.socket, entry: Path, run_dir: Path, scratch: Path | None) -> None:
    """Answer the scorer's control messages until it hangs up; one session at a time."""
    session: tuple[int, Path] | None = None
    try:
        while True:
            try:
                message, _, fds = receive(control, TO_MODEL_CONTROL, None, max_fds=1)
            except PeerClosed:
                return
            if isinstance(message, Open) and session is None and len(fds) == 1:
                folder = session_folder(scratch)
                session = (start_session(fds[0], control, entry, run_dir, folder), folder)
                send(control, Opened(pid=session[0]))
            elif isinstance(message, Close) and session is not None and not fds:
                ended = end_session(session[0], message.wait_s)
                _clean(session[1], scratch)
                session = None
                send(control, Closed(ended=ended))
            else:
                raise ProtocolError(f"{message.kind} out of turn")
    finally:
        if session is not None:
            end_session(session[0], 0.0)
            _clean(session[1], scratch)


def _clean(folder: Path, scratch: Path | None) -> None:
    if scratch is None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        _wipe(scratch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vibe_research.lm.serve")
    parser.add_argument("--entry", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument(
        "--scratch",
        type=Path,
        help="the only folder the sandbox lets this process write; emptied after every session",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    control = socket.socket(fileno=args.control_fd)
    import numpy  # noqa: F401  (warm for every child)
    import torch  # noqa: F401  (imported, never run, before forking)

    import vibe_research.lm.answer  # noqa: F401

    protect()
    send(control, Hello(pid=os.getpid()))
    try:
        serve(control, args.entry.resolve(), args.run_dir, args.scratch)
    except ProtocolError as exc:
        print(f"error: the scorer broke the protocol: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
