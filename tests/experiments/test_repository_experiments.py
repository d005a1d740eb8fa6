"""The repository's own experiments/ (the files its research loop edits, which differ from the
templates) run: each entry trains for a few seconds in the sandbox and its model is evaluated,
through `vibe-research train` in a workspace holding copies of them."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import commit_all

REPO = Path(__file__).resolve().parents[2]
ENTRIES = sorted(
    path.name
    for path in (REPO / "experiments").glob("*.py")
    if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")
)
# a tiny transformer on bytes: seconds per run on two busy cores
TINY = [
    "n_layer=1",
    "n_head=2",
    "n_embd=32",
    "context=64",
    "batch_size=8",
    "compile=off",
    "threads=1",
]
SETS = {
    "train.py": TINY,
    "ngram.py": ["order=3"],
    "fusion.py": ["heads=ngram,cache", "fit_tokens=2048"],
}


# train.py trains for its whole budget; ngram.py and fusion.py stop when built, and fusion.py
# fails a stage that passes the budget, which 12 s did on a loaded machine (four test workers on
# two cores): its budget is a ceiling, not time spent
BUDGETS = {"train.py": 12, "ngram.py": 12, "fusion.py": 60}


def _train(workspace: Path, entry: str, *sets: str) -> dict:
    arguments = [arg for item in sets for arg in ("--set", item)]
    command = [sys.executable, "-m", "vibe_research", "train", "--entry", f"experiments/{entry}"]
    done = subprocess.run(
        [*command, "--budget", str(BUDGETS[entry]), "--json", *arguments],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    [result] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo-experiments")
    done = subprocess.run(
        [sys.executable, "-m", "vibe_research", "init", str(root / "ws")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    workspace = root / "ws"
    shutil.rmtree(workspace / "experiments")
    shutil.copytree(REPO / "experiments", workspace / "experiments")
    settings = workspace / "vibe-research.toml"
    text = settings.read_text(encoding="utf-8").replace('source = "auto"', 'source = "synthetic"')
    text = text.replace('tokenizer = "bpe:4096"', 'tokenizer = "bytes"')
    settings.write_text(
        text.replace("samples_per_run = 8", "samples_per_run = 1"), encoding="utf-8"
    )
    commit_all(workspace, "the repository's experiments")
    subprocess.run(
        [sys.executable, "-m", "vibe_research", "data", "prepare"],
        cwd=workspace,
        check=True,
        capture_output=True,
    )
    return workspace


def test_every_entry_of_the_repository_is_covered() -> None:
    assert ENTRIES == ["fusion.py", "ngram.py", "train.py"] and set(SETS) == set(ENTRIES) == set(
        BUDGETS
    )


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_each_repository_experiment_trains_and_is_evaluated(workspace: Path) -> None:
    transformer = _train(workspace, "train.py", "tokenizer=bytes", *SETS["train.py"])
    assert transformer["outcome"] == "ok" and transformer["evaluation"]["ok"]
    ngram = _train(workspace, "ngram.py", "tokenizer=bytes", *SETS["ngram.py"])
    assert ngram["outcome"] == "ok" and ngram["evaluation"]["bpb"] > 0
    base = transformer["spec"]["run_dir"]
    fusion = _train(workspace, "fusion.py", f"base_run={base}", *SETS["fusion.py"])
    assert fusion["outcome"] == "ok", fusion["reason"]
    assert fusion["evaluation"]["bpb"] < transformer["evaluation"]["bpb"] + 0.5
