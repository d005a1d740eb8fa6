"""Tries to keep memory in a System V shared memory segment, which outlives the process that made
it (the kind of kernel object no file permission covers)."""

import ctypes
import os

from bigram import Bigram

IPC_CREAT = 0o1000


def load_model(run_dir):
    libc = ctypes.CDLL(None, use_errno=True)
    segment = libc.shmget(0x5EED, 1 << 16, IPC_CREAT | 0o600)
    if segment < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"shmget: {os.strerror(code)}")
    libc.shmctl(segment, 0, None)  # IPC_RMID: leave nothing behind where it was allowed
    return Bigram()
