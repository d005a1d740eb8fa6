"""A fresh network namespace: only a loopback that is down, so no address is reachable.

Root unshares it directly; a normal user first enters a user namespace that maps only its own
uid and gid (allowed where the kernel permits unprivileged user namespaces).
"""

import ctypes
import os
from pathlib import Path

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare: {os.strerror(code)}")


def enter_network_namespace() -> None:
    """Move this process into a new, empty network namespace."""
    if os.geteuid() == 0:
        _unshare(CLONE_NEWNET)
        return
    uid, gid = os.geteuid(), os.getegid()
    _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
