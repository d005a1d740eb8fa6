"""`vibe-research train` as a user runs it: a real subprocess, JSON out, and Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

VIBE = [str(Path(sys.executable).parent / "vibe-research")]


def vibe(workspace: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*VIBE, *args],
        cwd=workspace,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_processes_of(workspace: Path) -> list[int]:
    """Live processes whose command line names the workspace (its trainings and evaluations)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if str(workspace).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_train_json_runs_two_seeds(workspace: Path, home: Path) -> None:
    proc = vibe(
        workspace,
        "train",
        "--entry",
        "experiments/toy_train.py",
        "--runs",
        "2",
        "--seed",
        "7",
        "--budget",
        "30",
        "--set",
        "steps=2",
        "--json",
    )
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    results = json.loads(out)
    assert [r["spec"]["seed"] for r in results] == [7, 8] and {r["outcome"] for r in results} == {
        "ok"
    }
    assert all(r["evaluation"]["bpb"] > 0 for r in results)


def test_bad_set_is_one_line_and_exit_2(workspace: Path, home: Path) -> None:
    proc = vibe(workspace, "train", "--entry", "experiments/toy_train.py", "--set", "novalue")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "expected key=value" in err and "Traceback" not in err


def test_ctrl_c_stops_everything_and_records_interrupted(workspace: Path, home: Path) -> None:
    proc = vibe(
        workspace,
        "train",
        "--entry",
        "experiments/toy_train.py",
        "--runs",
        "2",
        "--budget",
        "60",
        "--set",
        "steps=100",
        "--set",
        "step_sleep_s=1",
        "--json",
    )
    deadline = time.monotonic() + 60
    while not list(workspace.glob(".vibe/runs/*/config.json")) and time.monotonic() < deadline:
        time.sleep(0.2)  # config.json appears once the training has parsed its arguments
    assert list(workspace.glob(".vibe/runs/*/config.json")), "the training never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    results = json.loads(out)
    assert [r["outcome"] for r in results] == ["interrupted", "interrupted"]
    assert "not started" in results[1]["reason"]
    assert run_processes_of(workspace) == []
