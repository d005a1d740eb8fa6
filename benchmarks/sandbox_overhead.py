"""Tokens/s of the same training inside and outside the sandbox, interleaved; medians and ratio.

    python benchmarks/sandbox_overhead.py WORKSPACE [--pairs 3] [--budget 60] [--set key=value ...]

WORKSPACE is a `vibe-research init` workspace with its token cache prepared. Each pair runs the
entry once in the sandbox (through the runner, evaluation off) and once as a plain subprocess, in
alternating order so that drifting machine load hits both sides alike. The figure compared is the
trainer's training tokens/s (its last step event, as the run summary takes it), so start-up is
not part of it; the start-up itself (launch to the `start` event) is reported apart.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vibe_research.lm.events import parse_event
from vibe_research.research.workspace import Workspace
from vibe_research.runs.executor import LocalExecutor
from vibe_research.runs.spec import plan_runs
from vibe_research.sandbox.policy import load_policy


def outside(
    workspace: Workspace, entry: str, budget: float, overrides: list[str]
) -> tuple[float, float]:
    """(training tokens/s, seconds from launch to the start event) of a plain subprocess."""
    speed, ready = 0.0, 0.0
    with tempfile.TemporaryDirectory() as out:
        launched = time.monotonic()
        command = [
            sys.executable,
            entry,
            "--out",
            out,
            "--seed",
            "0",
            "--budget",
            f"{budget:g}",
            *overrides,
        ]
        with subprocess.Popen(
            command,
            cwd=workspace.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as proc:
            for line in proc.stdout:
                event = parse_event(line)
                if event is not None and event.event == "start":
                    ready = time.monotonic() - launched
                if event is not None and event.event == "step":
                    speed = float(event.tokens_per_s)
        if proc.returncode != 0:
            raise SystemExit(f"plain run exited with {proc.returncode}")
    return speed, ready


def inside(
    workspace: Workspace,
    executor: LocalExecutor,
    entry: str,
    budget: float,
    overrides: dict[str, str],
) -> tuple[float, float]:
    """The same through the runner; start-up counts from the runner's `train` status event."""
    marks: dict[str, float] = {}

    def on_event(run_id: str, event: dict) -> None:
        if event.get("phase") == "train" or event.get("event") == "start":
            marks.setdefault(event.get("phase") or event["event"], time.monotonic())

    [spec] = plan_runs(
        workspace.root, workspace.runs, workspace.cache, entry, budget, [(0, overrides)], "bench"
    )
    [result] = executor.execute([spec.model_copy(update={"evaluate": False})], on_event)
    if result.outcome != "ok" or result.summary.tokens_per_s is None:
        raise SystemExit(f"sandboxed run ended {result.outcome}: {result.reason}")
    return result.summary.tokens_per_s, marks["start"] - marks["train"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--entry", default="experiments/train.py")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=60)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    workspace = Workspace(args.workspace.resolve())
    executor = LocalExecutor(load_policy(workspace.sandbox_file))
    overrides = dict(item.split("=", 1) for item in args.overrides)
    set_args = [arg for item in args.overrides for arg in ("--set", item)]
    measured: dict[str, list[tuple[float, float]]] = {"in": [], "out": []}
    for pair in range(args.pairs):
        for side in ("in", "out") if pair % 2 == 0 else ("out", "in"):
            if side == "in":
                measured[side].append(
                    inside(workspace, executor, args.entry, args.budget, overrides)
                )
            else:
                measured[side].append(outside(workspace, args.entry, args.budget, set_args))
            speed, ready = measured[side][-1]
            print(
                f"pair {pair + 1} {side:>3}: {speed:,.0f} tokens/s, start-up {ready:.1f} s",
                flush=True,
            )
    for side in ("in", "out"):
        speeds, readies = zip(*measured[side], strict=False)
        print(
            f"{side:>3} median {statistics.median(speeds):,.0f} tokens/s {[round(s) for s in speeds]}, start-up {statistics.median(readies):.1f} s"
        )
    ratio = statistics.median(s for s, _ in measured["in"]) / statistics.median(
        s for s, _ in measured["out"]
    )
    pairs = [
        inner[0] / outer[0] for inner, outer in zip(measured["in"], measured["out"], strict=False)
    ]
    print(
        f"ratio inside/outside: {ratio:.3f} (of the medians); per pair {[round(r, 2) for r in pairs]}, median {statistics.median(pairs):.3f}"
    )


if __name__ == "__main__":
    main()
