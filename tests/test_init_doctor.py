"""`vibe-research init` and `doctor` through the real console script."""

import json
import subprocess
import sys
from pathlib import Path

import git

from vibe_research.research.settings import Settings, load_settings

CLI = [sys.executable, "-m", "vibe_research"]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_init_lays_out_a_committed_workspace(tmp_path: Path) -> None:
    done = run(tmp_path, "init", "ws", "--json")
    assert done.returncode == 0, done.stderr
    root = tmp_path / "ws"
    assert json.loads(done.stdout)["workspace"] == str(root)
    for name in (
        "vibe-research.toml",
        "sandbox.toml",
        "notes/README.md",
        ".gitignore",
        "experiments/train.py",
        "experiments/ngram.py",
        "experiments/fusion.py",
        "experiments/distill.py",
    ):
        assert (root / name).is_file(), name
    repo = git.Repo(root)
    assert not repo.is_dirty(untracked_files=True)
    assert "experiments/train.py" in repo.git.ls_files().splitlines()
    assert ".vibe/" in (root / ".gitignore").read_text()
    # the template is the defaults, written out
    assert load_settings(root / "vibe-research.toml", environ={}) == Settings()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "sandbox.toml").write_text("mine\n")
    done = run(tmp_path, "init", "ws")
    assert done.returncode == 2
    assert "already exists" in done.stderr and done.stderr.strip().count("\n") == 0
    assert (tmp_path / "ws" / "sandbox.toml").read_text() == "mine\n"
    assert not (tmp_path / "ws" / "vibe-research.toml").exists()


def test_init_with_data_folder(tmp_path: Path, tinystories: Path) -> None:
    done = run(tmp_path, "init", "ws", "--data", str(tinystories))
    assert done.returncode == 0, done.stderr
    settings = load_settings(tmp_path / "ws" / "vibe-research.toml", environ={})
    assert settings.data.source == "files"
    assert settings.data.valid == str(tinystories.resolve() / "valid.txt")


def test_init_with_a_folder_that_is_not_data(tmp_path: Path) -> None:
    done = run(tmp_path, "init", "ws", "--data", str(tmp_path))
    assert done.returncode == 2 and "train*.txt and valid.txt" in done.stderr
    assert not (tmp_path / "ws").exists()


def test_doctor_reports_every_check(tmp_path: Path) -> None:
    assert run(tmp_path, "init", "ws").returncode == 0
    done = run(tmp_path / "ws", "doctor", "--json")
    report = json.loads(done.stdout)
    names = [check["name"] for check in report["checks"]]
    assert names[:3] == ["device", "precision", "data"] and {"llm", "sandbox", "git"} <= set(names)
    levels = {check["name"]: check["level"] for check in report["checks"]}
    assert levels["git"] == "ok" and levels["device"] == "ok"
    # what the trainer's dtype and compile `auto` can use here, said in words
    precision = next(check for check in report["checks"] if check["name"] == "precision")
    assert "bf16" in precision["detail"] and "compile" in precision["detail"]
    assert levels["tokens bpe:4096"] == "fail"  # nothing prepared yet: doctor says what to run
    assert done.returncode == 1
    assert report["sandbox"]["protections"]


def test_doctor_outside_a_workspace(tmp_path: Path) -> None:
    done = run(tmp_path, "doctor")
    assert done.returncode == 2 and "vibe-research init" in done.stderr
