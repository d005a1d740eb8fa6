"""Per-process limits applied in the launcher before exec: rlimits and, for root, no capabilities."""

import ctypes
import os
import resource
from pathlib import Path

_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def user_task_count(uid: int) -> int:
    """Tasks (threads included) this uid holds now: RLIMIT_NPROC counts them all, system-wide."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                continue  # the process ended while we looked
    return count


def apply_rlimits(limits: dict[str, int]) -> None:
    """Set soft and hard limits, e.g. {"RLIMIT_DATA": bytes}; hard limits only ever go down."""
    for name, value in limits.items():
        which = getattr(resource, name)
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets.

    With the bounding set empty, a uid-0 process cannot regain capabilities on exec, so a run as
    root cannot reboot, load modules, mount, or change cgroups, while files it owns stay usable.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(
                ctypes.get_errno(), f"could not drop capability {cap} from the bounding set"
            )
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(version=_CAPABILITY_VERSION_3, pid=0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
