"""torch.compile's caches, shared by every run of a workspace (sandbox.toml `compile_cache`), so a
run does not spend its budget recompiling what an earlier run of the same code compiled.
"""

import os
import pwd
from pathlib import Path


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
