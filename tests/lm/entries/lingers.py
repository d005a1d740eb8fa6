"""Leaves a process behind in every session to carry what it saw to the next: a daemon (double
fork, new session) that would live an hour. run_dir/pid_file names where its pid is written; a
session that finds the previous daemon still alive says so by refusing to load."""

import json
import os
import time
from pathlib import Path

from bigram import Bigram


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return stat[0] != "Z"


def leave_daemon(pid_file: Path) -> None:
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    pid_file.write_text(str(os.getpid()))
    time.sleep(3600)
    os._exit(0)


def load_model(run_dir):
    pid_file = Path(json.loads((Path(run_dir) / "config.json").read_text())["pid_file"])
    if pid_file.exists() and alive(int(pid_file.read_text())):
        raise RuntimeError(f"the daemon {pid_file.read_text()} of an earlier session is alive")
    pid_file.unlink(missing_ok=True)
    leave_daemon(pid_file)
    while not pid_file.exists():
        time.sleep(0.01)
    return Bigram()
