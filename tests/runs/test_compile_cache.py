"""The shared compile cache survives a run stopped mid-link: inductor's cut-off `.so` files are
removed so they are compiled again, rather than failing to load in every later run (which then
trains eager at a fraction of the speed)."""

import importlib.util
import os
import shutil
import time
from pathlib import Path

import pytest
from toy import spec_for

from vibe_research.runs.compile_cache import compile_dir, drop_truncated, truncated
from vibe_research.runs.executor import LocalExecutor
from vibe_research.sandbox.policy import SandboxPolicy


@pytest.fixture
def library() -> Path:
    """A real shared library: an extension module of this Python's standard library."""
    origin = importlib.util.find_spec("_ctypes").origin
    if origin is None or not origin.endswith(".so") or Path(origin).read_bytes()[:4] != b"\x7fELF":
        pytest.skip("needs this Python's extension modules as ELF shared libraries (Linux)")
    return Path(origin)


def cut(library: Path, to: Path, size: int | None) -> Path:
    """A copy of `library` at `to`, cut to `size` bytes (None: whole)."""
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(library, to)
    if size is not None:
        os.truncate(to, size)
    return to


def test_a_library_cut_short_is_told_from_a_whole_one(library: Path, tmp_path: Path) -> None:
    size = library.stat().st_size
    assert not truncated(cut(library, tmp_path / "whole.so", None))
    assert truncated(cut(library, tmp_path / "half.so", size // 2))
    assert truncated(cut(library, tmp_path / "end.so", size - 1))
    assert truncated(cut(library, tmp_path / "header.so", 40))
    assert truncated(cut(library, tmp_path / "empty.so", 0))
    other = tmp_path / "macho.so"
    other.write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))  # not ELF: only an empty one is known cut
    assert not truncated(other)


def test_only_cut_libraries_old_enough_are_removed(library: Path, tmp_path: Path) -> None:
    kernels = compile_dir(tmp_path) / "inductor" / "ab"
    whole = cut(library, kernels / "whole.so", None)
    old = cut(library, kernels / "old.so", 100)
    fresh = cut(library, kernels / "fresh.so", 0)
    os.utime(old, (time.time() - 600, time.time() - 600))
    assert drop_truncated(tmp_path, older_than_s=60) == [old]
    assert whole.exists() and fresh.exists() and not old.exists()
    assert drop_truncated(tmp_path) == [fresh]
    assert drop_truncated(tmp_path / "no-cache-yet") == []


def test_a_run_leaves_the_cache_without_libraries_cut_short(
    workspace: Path, home: Path, library: Path
) -> None:
    """What the smoke run of a compiled model left (a kernel's `.so` empty, linked when it was
    stopped) is gone once the next run has run; the whole kernels stay."""
    spec = spec_for(workspace, "toy_train.py", "toy-cache", steps="3")
    kernels = compile_dir(spec.cache_dir) / "inductor" / "vr"
    left = cut(library, kernels / "cvrk.main.so", 0)
    whole = cut(library, kernels / "cabc.main.so", None)
    [result] = LocalExecutor(SandboxPolicy()).execute([spec])
    assert result.outcome == "ok", (result.reason, result.log_tail)
    assert not left.exists() and whole.exists()
