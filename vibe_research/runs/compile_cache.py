"""torch.compile's caches, shared by every run of a workspace (sandbox.toml `compile_cache`), so a
run does not spend its budget recompiling what an earlier run of the same code compiled.

A run stopped while inductor links a kernel (the smoke run is stopped after its first step, a
budget's end or Ctrl-C can land anywhere) leaves that kernel's `.so` short or empty in the shared
cache, and inductor then fails to load it in every later run of the same code, which trains
eager at a fraction of the speed: `drop_truncated` removes such files so they are compiled again.
"""

import logging
import os
import pwd
import struct
import time
from pathlib import Path

log = logging.getLogger(__name__)


def compile_dir(cache_dir: Path) -> Path:
    return cache_dir / "compile"


def compile_environment(cache_dir: Path) -> dict[str, str]:
    folder = compile_dir(cache_dir)
    return {
        "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor"),
        "TRITON_CACHE_DIR": str(folder / "triton"),
    }


def link_inductor_tmp(cache_dir: Path, tmp_dir: Path) -> None:
    """Inductor keeps its precompiled headers (~150 MB, tens of seconds to build) in
    TMPDIR/torchinductor_<user> whatever TORCHINDUCTOR_CACHE_DIR says; a run's TMPDIR is private
    and fresh, so that one folder is a link into the shared cache."""
    user = pwd.getpwuid(
        os.getuid()
    ).pw_name  # what getpass.getuser() finds in the filtered environment
    shared = compile_dir(cache_dir) / "tmp"
    shared.mkdir(parents=True, exist_ok=True)
    link = tmp_dir / f"torchinductor_{user}"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(shared, target_is_directory=True)


def drop_truncated(cache_dir: Path, older_than_s: float = 0.0) -> list[Path]:
    """Remove the compiled libraries under the inductor cache that are empty or shorter than
    their ELF header says (a link a stopped run cut off); those modified in the last
    `older_than_s` seconds are left alone (another process may be writing them). What was
    removed."""
    folder = compile_dir(cache_dir) / "inductor"
    now = time.time()
    dropped = []
    for path in folder.rglob("*.so") if folder.is_dir() else []:
        try:
            if now - path.stat().st_mtime >= older_than_s and truncated(path):
                path.unlink()
                dropped.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to read: nothing to repair
    if dropped:
        log.warning(
            "removed %d truncated compiled kernel(s) from %s (left by a stopped run); they are "
            "compiled again",
            len(dropped),
            folder,
        )
    return dropped


def truncated(path: Path) -> bool:
    """Whether a shared library is empty or ends before its section headers (which ELF keeps at
    the end of the file). A file that is not ELF (Mach-O on macOS) counts as truncated only when
    empty."""
    size = path.stat().st_size
    if size == 0:
        return True
    with path.open("rb") as f:
        head = f.read(64)
    if head[:4] != b"\x7fELF" or len(head) < 6:
        return False
    order = "<" if head[5] == 1 else ">"
    if head[4] == 2:  # 64-bit: e_shoff at 0x28, e_shentsize and e_shnum at 0x3A
        if len(head) < 64:
            return True
        (shoff,) = struct.unpack_from(order + "Q", head, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", head, 0x3A)
    else:  # 32-bit: e_shoff at 0x20, e_shentsize and e_shnum at 0x2E
        if len(head) < 52:
            return True
        (shoff,) = struct.unpack_from(order + "I", head, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", head, 0x2E)
    return shoff + shentsize * shnum > size
