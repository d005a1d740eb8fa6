"""The README's "Writing an experiment" example is true: its file, copied as it stands into a fresh
workspace, trains in the sandbox and is evaluated by `vibe-research train`, which builds the token
caches it needs first (no `data prepare` run) and rebuilds them when [data] changes."""

import json
import re
import subprocess
import sys
from pathlib import Path

from gitrepo import commit_all

from vibe_research.lm.synthetic import generate_stories

README = Path(__file__).resolve().parents[2] / "README.md"
TRAIN = [sys.executable, "-m", "vibe_research", "train", "--json"]


def readme_experiment() -> str:
    section = README.read_text(encoding="utf-8").split("## Writing an experiment", 1)[1]
    [code] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.DOTALL)
    return code


def _train(workspace: Path) -> tuple[dict, str]:
    done = subprocess.run(
        [*TRAIN, "--entry", "experiments/unigram.py", "--set", "alpha=0.1", "--budget", "20"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = json.loads(done.stdout)
    assert result["outcome"] == "ok", result["reason"]
    return result, done.stderr


def _write(path: Path, stories: list[str]) -> None:
    path.write_text("".join(story + "<|endoftext|>\n" for story in stories), encoding="utf-8")


def test_the_readme_experiment_trains_and_is_evaluated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "train.txt", generate_stories("readme:train", 0, 400))
    _write(data / "valid.txt", generate_stories("readme:valid", 0, 40))
    workspace = tmp_path / "ws"
    subprocess.run(
        [sys.executable, "-m", "vibe_research", "init", str(workspace), "--data", str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    settings = workspace / "vibe-research.toml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(
        text.replace("samples_per_run = 8", "samples_per_run = 1"), encoding="utf-8"
    )
    (workspace / "experiments" / "unigram.py").write_text(readme_experiment(), encoding="utf-8")
    commit_all(workspace, "the README's experiment")

    first, said = _train(workspace)
    assert "building the bpe:4096 token caches" in said
    assert first["evaluation"]["ok"] and first["evaluation"]["checks"]
    # a unigram of these stories: far worse than any trained model, far better than uniform
    assert 1.0 < first["evaluation"]["bpb"] < 4.0

    # other validation stories: the cache is rebuilt, and the score is of the new stories
    _write(data / "valid.txt", generate_stories("readme:valid", 40, 60))
    second, said = _train(workspace)
    assert "rebuilt the bpe:4096 token caches (valid): the data changed" in said
    assert second["evaluation"]["tokens"] != first["evaluation"]["tokens"]
