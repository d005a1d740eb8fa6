"""seccomp filters. One refuses socket(AF_UNIX, ...): Landlock (ABI <= 7) does not govern
connect() on unix sockets bound to paths, so without this a run could reach /var/run/docker.sock
or an SSH agent. socketpair() stays allowed: multiprocessing and torch data loaders use it.

The other, for the model process of an evaluation, refuses the kernel objects that outlive a
process without being files: System V shared memory, semaphores and message queues, POSIX
message queues and keyrings. A session of the model process could leave what it saw in one of
them for the next session (files it cannot: its one writable folder is emptied in between).
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
# shmget shmat shmctl shmdt, semget semop semctl semtimedop, msgget msgsnd msgrcv msgctl,
# mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr, add_key request_key keyctl
_X86_64_IPC = [29, 30, 31, 67, 64, 65, 66, 220, 68, 69, 70, 71, *range(240, 246), 248, 249, 250]
_GENERIC_IPC = [194, 196, 195, 197, 190, 193, 191, 192, 186, 189, 188, 187, *range(180, 186)]
_IPC = {
    "x86_64": _X86_64_IPC,
    "aarch64": [*_GENERIC_IPC, 217, 218, 219],
    "arm64": [*_GENERIC_IPC, 217, 218, 219],
}

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


def _preamble(arch: int) -> list[tuple[int, int, int, int]]:
    """Refuse any other ABI (i386 int 0x80, x32) whole; leave the syscall number loaded."""
    deny = _RET_ERRNO | errno.EACCES
    # Jump offsets count instructions after the current one.
    return [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 1, 0, arch),
        (_RET_K, 0, 0, deny),
        (_LD_W_ABS, 0, 0, _NR),
        (_JGE_K, 0, 1, _X32_SYSCALL_BIT),
        (_RET_K, 0, 0, deny),
    ]


def _program(arch: int, socket_nr: int) -> list[tuple[int, int, int, int]]:
    deny = _RET_ERRNO | errno.EACCES
    return [
        *_preamble(arch),
        (_JEQ_K, 0, 3, socket_nr),
        (_LD_W_ABS, 0, 0, _ARG0),  # the low 32 bits of the domain (little-endian)
        (_JEQ_K, 0, 1, _AF_UNIX),
        (_RET_K, 0, 0, deny),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]


def _ipc_program(arch: int, numbers: list[int]) -> list[tuple[int, int, int, int]]:
    deny = _RET_ERRNO | errno.EPERM
    checks = [item for nr in numbers for item in ((_JEQ_K, 0, 1, nr), (_RET_K, 0, 0, deny))]
    return [*_preamble(arch), *checks, (_RET_K, 0, 0, _RET_ALLOW)]


def _install(instructions: list[tuple[int, int, int, int]]) -> None:
    """Install the filter on this process and everything it execs or forks afterwards."""
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


def block_unix_sockets() -> None:
    arch, socket_nr = _ARCHES[platform.machine()]
    _install(_program(arch, socket_nr))


def block_persistent_ipc() -> None:
    arch, _ = _ARCHES[platform.machine()]
    _install(_ipc_program(arch, _IPC[platform.machine()]))
