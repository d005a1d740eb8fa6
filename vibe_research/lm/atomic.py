"""Atomic, durable writes: a temp file beside the target, fsynced, renamed onto it, and the folder
fsynced, so a crash leaves the old file or the new one, never half of one. The one writer every
layer uses for files a person or a restarted process reads back."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NEW_FILE_MODE = 0o644  # mkstemp creates 0600; a new file gets the usual mode instead


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path` to write (for files written as a stream); on success it is
    fsynced and renamed onto `path`, on error deleted. An existing file keeps its permission bits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else NEW_FILE_MODE
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        descriptor = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(temp, mode)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` by `data`."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """`text` as UTF-8, byte for byte: no newline translation, so CRLF files stay CRLF."""
    write_bytes(path, text.encode("utf-8"))


def write_text_if_changed(path: Path, text: str) -> bool:
    """write_text unless the file already holds exactly `text`; whether it wrote."""
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return False
    write_bytes(path, data)
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files a killed writer left beside its targets (never renamed into place)."""
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
