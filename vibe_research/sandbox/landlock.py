"""Landlock through raw syscalls (ctypes): an allow-list of paths, and TCP bind/connect denied.

Landlock can only allow: once a ruleset handles a right, every path not granted it is refused,
for root too. Rights a kernel does not know (older ABI) are masked away.
"""

import ctypes
import errno
import os
from pathlib import Path
from typing import Literal

# Syscall numbers are the same on every architecture (added after the tables were unified).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1

# Rights that may be granted on a regular file rather than a folder.
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

Grant = Literal["read", "exec", "write", "device"]
_READ = READ_FILE | READ_DIR
GRANT_RIGHTS: dict[str, int] = {
    "read": _READ,
    "exec": _READ | EXECUTE,
    "write": _READ
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SYM
    | MAKE_SOCK
    | MAKE_FIFO
    | REFER
    | TRUNCATE,
    "device": _READ | WRITE_FILE | IOCTL_DEV,
}


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel struct is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockError(OSError):
    """A Landlock syscall failed while restricting this process."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI (0: unsupported or disabled)."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return 0
    version = _libc().syscall(
        _CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
    )
    return max(int(version), 0)


def handled_fs(abi: int) -> int:
    """Every filesystem right this ABI knows, so nothing is left unhandled (allowed by default)."""
    rights = (MAKE_SYM << 1) - 1  # ABI 1: bits 0..12
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise LandlockError(code, f"landlock {what}: {os.strerror(code)}")
    return result


def _add_path(libc: ctypes.CDLL, ruleset: int, path: Path, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, PermissionError):
        return  # absent here (e.g. /lib32) or closed to this user anyway: the grant changes nothing
    try:
        if not path.is_dir():
            rights &= _FILE_RIGHTS
        attr = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        _check(
            libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(attr), 0),
            f"add rule for {path}",
        )
    finally:
        os.close(fd)


def restrict(grants: list[tuple[Path, Grant]], allow_tcp: bool) -> int:
    """Restrict this process (and what it execs) to `grants`; returns the ABI used.

    TCP bind and connect are denied on every port unless `allow_tcp` (ABI 4+); on ABI 6+ signals
    and abstract unix sockets are scoped to the sandbox.
    """
    abi = abi_version()
    if abi < 1:
        raise LandlockError(errno.EOPNOTSUPP, "landlock is not available on this kernel")
    fs = handled_fs(abi)
    attr = _RulesetAttr(
        handled_access_fs=fs,
        handled_access_net=(NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 and not allow_tcp else 0,
        scoped=(SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    libc = _libc()
    ruleset = _check(
        libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
        "create ruleset",
    )
    try:
        for path, grant in grants:
            _add_path(libc, ruleset, path, GRANT_RIGHTS[grant] & fs)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
        _check(libc.syscall(_RESTRICT_SELF, ruleset, 0), "restrict self")
    finally:
        os.close(ruleset)
    return abi
