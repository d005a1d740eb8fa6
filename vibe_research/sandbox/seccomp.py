"""A seccomp filter that refuses socket(AF_UNIX, ...): Landlock (ABI <= 7) does not govern
connect() on unix sockets bound to paths, so without this a run could reach /var/run/docker.sock
or an SSH agent. socketpair() stays allowed: multiprocessing and torch data loaders use it.
"""

import ctypes
import errno
import os
import platform

_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_AF_UNIX = 1
_X32_SYSCALL_BIT = 0x40000000
# (audit arch of seccomp_data.arch, number of socket()) per machine
_ARCHES = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198), "arm64": (0xC00000B7, 198)}

# classic BPF opcodes
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
# offsets in struct seccomp_data: nr (int), arch (u32), instruction_pointer (u64), args[6] (u64)
_NR, _ARCH, _ARG0 = 0, 4, 16


class _Filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def supported() -> bool:
    return (
        platform.system() == "Linux"
        and platform.machine() in _ARCHES
        and os.path.exists("/proc/sys/kernel/seccomp/actions_avail")
    )


def _program(arch: int, socket_nr: int) -> list[tuple[int, int, int, int]]:
    deny = _RET_ERRNO | errno.EACCES
    # Jump offsets count instructions after the current one.
    return [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 1, 0, arch),  # another ABI (i386 int 0x80): refused whole
        (_RET_K, 0, 0, deny),
        (_LD_W_ABS, 0, 0, _NR),
        (_JGE_K, 0, 1, _X32_SYSCALL_BIT),  # the x32 ABI: refused whole
        (_RET_K, 0, 0, deny),
        (_JEQ_K, 0, 3, socket_nr),
        (_LD_W_ABS, 0, 0, _ARG0),  # the low 32 bits of the domain (little-endian)
        (_JEQ_K, 0, 1, _AF_UNIX),
        (_RET_K, 0, 0, deny),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]


def block_unix_sockets() -> None:
    """Install the filter on this process and everything it execs or forks afterwards."""
    arch, socket_nr = _ARCHES[platform.machine()]
    instructions = _program(arch, socket_nr)
    filters = (_Filter * len(instructions))(
        *(_Filter(*instruction) for instruction in instructions)
    )
    program = _Program(len(instructions), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if (
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        or libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0
    ):
        code = ctypes.get_errno()
        raise OSError(code, f"seccomp: {os.strerror(code)}")
