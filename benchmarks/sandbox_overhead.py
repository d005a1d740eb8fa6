"""Tokens/s of the same training inside and outside the sandbox, interleaved; medians and ratio.

    python benchmarks/sandbox_overhead.py WORKSPACE [--pairs 3] [--budget 60] [--set key=value ...]

WORKSPACE is a `vibe-research init` workspace with its token cache prepared. Each pair runs the
entry once in the sandbox (through the runner, evaluation off) and once as a plain subprocess, in
alternating order so that drifting machine load hits both sides alike. The figure compared is the
trainer's own tokens/s (its last report), so start-up cost is not part of it.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vibe_research.lm.events import parse_event
from vibe_research.runs.executor import LocalExecutor
from vibe_research.runs.spec import plan_runs
from vibe_research.sandbox.policy import load_policy
from vibe_research.workspace import Workspace


def outside(workspace: Workspace, entry: str, budget: float, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, entry, "--out", out, "--seed", "0", "--budget", f"{budget:g}", *overrides]
        done = subprocess.run(command, cwd=workspace.root, capture_output=True, text=True, check=True)
    speeds = [event.tokens_per_s for line in done.stdout.splitlines() if (event := parse_event(line)) and hasattr(event, "tokens_per_s")]
    return float(speeds[-1])


def inside(workspace: Workspace, executor: LocalExecutor, entry: str, budget: float, overrides: dict[str, str]) -> float:
    [spec] = plan_runs(workspace.root, workspace.runs, workspace.cache, entry, budget, [0], overrides)
    [result] = executor.execute([spec.model_copy(update={"evaluate": False})])
    if result.outcome != "ok" or result.summary.tokens_per_s is None:
        raise SystemExit(f"sandboxed run ended {result.outcome}: {result.reason}")
    return result.summary.tokens_per_s


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
    sandboxed, plain = [], []
    for pair in range(args.pairs):
        order = ("in", "out") if pair % 2 == 0 else ("out", "in")
        for side in order:
            if side == "in":
                sandboxed.append(inside(workspace, executor, args.entry, args.budget, overrides))
            else:
                plain.append(outside(workspace, args.entry, args.budget, set_args))
            print(f"pair {pair + 1} {side:>3}: {(sandboxed if side == 'in' else plain)[-1]:,.0f} tokens/s", flush=True)
    ratio = statistics.median(sandboxed) / statistics.median(plain)
    print(f"inside  median {statistics.median(sandboxed):,.0f} tokens/s  {[round(x) for x in sandboxed]}")
    print(f"outside median {statistics.median(plain):,.0f} tokens/s  {[round(x) for x in plain]}")
    print(f"ratio inside/outside: {ratio:.3f}")


if __name__ == "__main__":
    main()
