"""A tiny real workspace for end-to-end tests of the loop: real data (synthetic stories without
../shared/data), a tiny model, seconds of budget."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vibe_research.llm.config_block import read_config
from vibe_research.lm.synthetic import generate_stories

SHARED_DATA = Path(
    os.environ.get("VIBE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
TINYSTORIES = SHARED_DATA / "tinystories"

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
# drift: tiny runs on a busy 2-core machine calibrate 5-10% apart at random, and the guard's
# reruns would double most tests' runs; test_continue_llm.py sets 0 to run one on every compare
SETTINGS = {"budget_s": "4", "runs_per_proposal": "2", "smoke_budget_s": "3", "drift": "1.0"}


def _stories(path: Path, count: int) -> str:
    stories = path.read_text(encoding="utf-8").split("<|endoftext|>\n")[:count]
    return "".join(story + "<|endoftext|>\n" for story in stories)


def _synthetic(stream: str, count: int) -> str:
    return "".join(f"{story}\n<|endoftext|>\n" for story in generate_stories(stream, 0, count))


def make_data(folder: Path, train: int = 300, valid: int = 30, test: int = 20) -> Path:
    """A small slice of the real stories where ../shared/data is present, else synthetic stories
    (lm/synthetic.py), so a clone without the shared data still tests the loop; in tmp, never
    in the repository. test.txt is a sealed test split, disjoint from valid."""
    folder.mkdir(parents=True, exist_ok=True)
    if (TINYSTORIES / "valid.txt").is_file():
        train_text = _stories(TINYSTORIES / "train-v1.txt", train)
        held_out = _stories(TINYSTORIES / "valid.txt", valid + test).split("<|endoftext|>\n")
        valid_text = "".join(story + "<|endoftext|>\n" for story in held_out[:valid])
        test_text = "".join(story + "<|endoftext|>\n" for story in held_out[valid : valid + test])
    else:
        train_text, valid_text = _synthetic("loop:train", train), _synthetic("loop:valid", valid)
        test_text = _synthetic("loop:test", test)
    (folder / "train-small.txt").write_text(train_text, encoding="utf-8")
    (folder / "valid.txt").write_text(valid_text, encoding="utf-8")
    (folder / "test.txt").write_text(test_text, encoding="utf-8")
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
def tiny_workspace(tmp_path: Path) -> Path:
    """`vibe-research init` with a slice of TinyStories, a tiny model and a few seconds of budget, committed."""
    data = make_data(tmp_path / "data")
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
