"""A tiny real workspace for end-to-end tests of the loop: real data, a tiny model, seconds of budget."""

import subprocess
import sys
from pathlib import Path

import pytest

from vibe_research.llm.config_block import read_config

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "vibe_research"]

# Small enough that one run (train + evaluate) takes seconds on two busy cores.
TINY = {
    "tokenizer": "bytes",
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "context": 64,
    "batch_size": 8,
    "compile": "off",
    "dtype": "fp32",
    "threads": 1,
    "log_every": 5,
}
SETTINGS = {"budget_s": "6", "runs_per_proposal": "2", "smoke_budget_s": "3"}


def _stories(path: Path, count: int) -> str:
    stories = path.read_text(encoding="utf-8").split("<|endoftext|>\n")[:count]
    return "".join(story + "<|endoftext|>\n" for story in stories)


def make_data(tinystories: Path, folder: Path, train: int = 300, valid: int = 30) -> Path:
    """A small slice of the real stories (in tmp, never in the repository)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train-small.txt").write_text(
        _stories(tinystories / "train-v1.txt", train), encoding="utf-8"
    )
    (folder / "valid.txt").write_text(_stories(tinystories / "valid.txt", valid), encoding="utf-8")
    return folder


def shrink_config(train_py: Path, values: dict) -> None:
    text = train_py.read_text(encoding="utf-8")
    config = read_config(text)
    for key, value in values.items():
        edit = config[key].edit("experiments/train.py", value)
        text = text.replace(edit.search, edit.replace, 1)
    train_py.write_text(text, encoding="utf-8")


def vibe(
    workspace: Path, *args: str, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


@pytest.fixture
def tiny_workspace(tmp_path: Path, tinystories: Path) -> Path:
    """`vibe-research init` with a slice of TinyStories, a tiny model and a few seconds of budget, committed."""
    data = make_data(tinystories, tmp_path / "data")
    workspace = tmp_path / "ws"
    done = vibe(tmp_path, "init", str(workspace), "--data", str(data))
    assert done.returncode == 0, done.stderr
    shrink_config(workspace / "experiments" / "train.py", TINY)
    settings = workspace / "vibe-research.toml"
    text = settings.read_text(encoding="utf-8").replace(
        'tokenizer = "bpe:4096"', 'tokenizer = "bytes"'
    )
    for key, value in SETTINGS.items():
        lines = [
            f"{key} = {value}" if line.split("=")[0].strip() == key else line
            for line in text.splitlines()
        ]
        text = "\n".join(lines) + "\n"
    text = text.replace("samples_per_run = 8", "samples_per_run = 2")
    settings.write_text(text, encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "tiny settings for tests"], cwd=workspace, check=True)
    return workspace
