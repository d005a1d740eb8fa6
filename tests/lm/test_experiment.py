"""The experiment command line, run as real scripts in subprocesses."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vibe_research.lm.experiment import process_age

SCRIPT = """
import json
from vibe_research.lm.experiment import parse_args

DEFAULTS = {"lr": 0.001, "layers": 4, "compile": True, "name": "baseline"}
experiment = parse_args(DEFAULTS)
print(json.dumps({"seed": experiment.seed, "budget": experiment.budget, "config": experiment.config,
                  "elapsed": experiment.elapsed(), "deadline": experiment.deadline()}))
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=60
    )


def test_overrides_are_typed_printed_and_saved(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run(
        tmp_path,
        "--out",
        str(out),
        "--seed",
        "7",
        "--budget",
        "60",
        "--set",
        "lr=0.01",
        "--set",
        "layers=6",
        "--set",
        "compile=false",
        "--set",
        "name=wide",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    expected = {"lr": 0.01, "layers": 6, "compile": False, "name": "wide"}
    assert result["config"] == expected and (result["seed"], result["budget"]) == (7, 60.0)
    assert json.loads((out / "config.json").read_text()) == expected
    assert "override: layers = 6 (default 4)" in done.stderr
    assert 0 < result["elapsed"] < 60 and result["deadline"] == pytest.approx(
        60 - result["elapsed"], abs=0.5
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "depth=3"], "--set depth: unknown key; known keys: compile, layers, lr, name"),
        (["--set", "layers=4.5"], "--set layers=4.5: expected int like the default 4"),
        (["--set", "lr=fast"], "--set lr=fast: expected float"),
        (["--set", "compile=maybe"], "expected a bool"),
        (["--set", "lr"], "expected key=value"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        ([], "--out RUN_DIR is required"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = ["--out", str(tmp_path / "run")] if args else []
    done = run(tmp_path, *out, *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "config.json").exists()


def test_describe_prints_the_resolved_config(tmp_path: Path) -> None:
    done = run(tmp_path, "--describe", "--set", "layers=2")
    assert done.returncode == 0
    assert json.loads(done.stdout) == {
        "lr": 0.001,
        "layers": 2,
        "compile": True,
        "name": "baseline",
    }


def test_deadline_counts_from_process_start(tmp_path: Path) -> None:
    # A slow import before parse_args must count against the budget.
    script = tmp_path / "slow.py"
    script.write_text("import time\ntime.sleep(1.0)\n" + SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path / "r"), "--budget", "30"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["elapsed"] >= 1.0


def test_process_age_of_this_process_is_positive_and_bounded() -> None:
    age = process_age()
    assert 0 < age < time.monotonic()
