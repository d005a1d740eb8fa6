"""Small shared pieces of the lm tests (a module, not conftest, so its name is unique)."""

import os
import subprocess
import sys
from pathlib import Path

VIBE = Path(sys.executable).parent / "vibe-research"
STORIES = [
    "Once upon a time, there was a little girl named Lily. She loved her red ball.",
    'Tom saw a big dog. "Hello!" he said. The dog wagged its tail, and they played all day.',
    "The sun was hot. Mia drank cold water and smiled. Café au lait was not for kids, Mom said.",
]


def write_txt(path: Path, stories: list[str]) -> Path:
    """Stories in the TinyStories layout: each story, then a line <|endoftext|>."""
    path.write_text("".join(f"{story}\n<|endoftext|>\n" for story in stories), encoding="utf-8")
    return path


def run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """A real subprocess with this environment minus the project's own variables, plus `env`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIBE_CACHE_DIR", "VIBE_DATA", "VIBE_DEBUG"}
    }
    return subprocess.run(
        command, cwd=cwd, env=clean | (env or {}), capture_output=True, text=True, timeout=120
    )


def vibe(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed `vibe-research` console script."""
    return run([str(VIBE), *args], cwd, env)
