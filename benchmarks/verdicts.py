"""Whether the tool's verdicts can be trusted: A/A comparisons, and a comparison made unfair by a
CPU hog on one side.

    .venv/bin/python benchmarks/verdicts.py aa  --workspace WS [--comparisons 20] [--runs 2]
        [--budget 20] [--fresh-seeds] [--set key=value ...]
    .venv/bin/python benchmarks/verdicts.py hog --workspace WS [--budget 30]

aa: the same code against itself, `--comparisons` times, `--runs` runs a side, through the real
runner (sandboxed training and evaluation, each run calibrated) and the real statistics
(research.stats.compare, objective bpb, 95%). A trustworthy verdict calls nearly all of them
inconclusive. By default both sides use the same seeds, as the loop runs a change against its
reference; `--fresh-seeds` gives side B seeds of its own.

hog: `vibe-research continue --auto 1` in WS (a workspace whose baseline is measured), with a CPU
hog (one busy process per core) running while the candidate's first runs train and stopped
before anything else: the loop must see the two sides' calibrations differ, run both again side
by side, and decide on those runs. Prints the decision's machine-speed line and the batch.

Run both on an otherwise idle machine; results go in benchmarks/README.md.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from vibe_research.research.settings import load_settings
from vibe_research.research.state.experiments import rebuild_state
from vibe_research.research.state.ledger import RunEndRecord, RunStartRecord, read
from vibe_research.research.stats import compare
from vibe_research.research.workspace import Workspace
from vibe_research.runs.executor import make_executor
from vibe_research.runs.spec import plan_runs


def aa(args: argparse.Namespace) -> None:
    workspace = Workspace(args.workspace.resolve())
    settings = load_settings(workspace.settings_file)
    executor = make_executor(settings.train, workspace.sandbox_file)
    overrides = dict(item.split("=", 1) for item in args.set)
    verdicts, rows = [], []
    for number in range(args.comparisons):
        first = number * 2 * args.runs
        sides = {}
        for side in ("A", "B"):
            start = first + (args.runs if side == "B" and args.fresh_seeds else 0)
            seeds = list(range(start, start + args.runs))
            specs = plan_runs(
                workspace.root,
                workspace.runs,
                workspace.cache,
                args.entry,
                args.budget,
                [(seed, overrides) for seed in seeds],
                prefix=f"aa{number}{side.lower()}",
                samples=0,
            )
            results = executor.execute(specs)
            bad = [r for r in results if r.outcome != "ok" or r.bpb is None]
            if bad:
                raise SystemExit(
                    f"comparison {number} side {side}: {bad[0].outcome}: {bad[0].reason}"
                )
            sides[side] = results
        a = [r.bpb for r in sides["A"]]
        b = [r.bpb for r in sides["B"]]
        comparison = compare("bpb", b, a)
        verdicts.append(comparison.verdict)
        speed = [r.calibration.gflops for s in sides.values() for r in s if r.calibration]
        rows.append(
            f"| {number} | {' / '.join(f'{x:.4f}' for x in a)} | {' / '.join(f'{x:.4f}' for x in b)} | "
            f"{comparison.bpb.diff:+.4f} | {comparison.bpb.p_value if comparison.bpb.p_value is not None else float('nan'):.3f} | "
            f"{comparison.verdict} | {min(speed):.1f}-{max(speed):.1f} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    inconclusive = verdicts.count("inconclusive")
    print("| # | side A bpb | side B bpb | B - A | p | verdict | calibration GFLOP/s |")
    print("|---:|---|---|---:|---:|---|---|")
    print("\n".join(rows))
    print(
        f"\n{inconclusive} of {len(verdicts)} A/A comparisons inconclusive "
        f"({inconclusive / len(verdicts):.0%}); {args.runs} runs a side, {args.budget:g} s each, "
        f"{'fresh' if args.fresh_seeds else 'the same'} seeds on side B"
    )


def _hog() -> None:
    while True:
        pass


def hog(args: argparse.Namespace) -> None:
    workspace = Workspace(args.workspace.resolve())
    ledger = workspace.ledger
    before = len(read(ledger).records) if ledger.exists() else 0
    command = [
        sys.executable,
        "-m",
        "vibe_research",
        "continue",
        "--auto",
        "1",
        "--budget",
        f"{args.budget:g}",
    ]
    loop = subprocess.Popen(command, cwd=workspace.root, stdin=subprocess.DEVNULL)
    hogs: list[multiprocessing.Process] = []
    candidate: str | None = None
    try:
        while loop.poll() is None:
            records = read(ledger).records[before:] if ledger.exists() else []
            starts = [r for r in records if isinstance(r, RunStartRecord) and r.batch is None]
            ends = {r.run for r in records if isinstance(r, RunEndRecord)}
            if starts and candidate is None:
                candidate = starts[0].experiment
                hogs = [
                    multiprocessing.Process(target=_hog, daemon=True)
                    for _ in range(os.cpu_count() or 1)
                ]
                for process in hogs:
                    process.start()
                print(f"CPU hog started beside {candidate}'s runs", file=sys.stderr, flush=True)
            if hogs and starts and all(r.run in ends for r in starts):
                for process in hogs:
                    process.terminate()
                hogs = []
                print("CPU hog stopped: the first runs are done", file=sys.stderr, flush=True)
            time.sleep(0.5)
    finally:
        for process in hogs:
            process.terminate()
    state = rebuild_state(read(ledger).records)
    experiment = state.experiments[candidate] if candidate else None
    if experiment is None or experiment.decision is None:
        raise SystemExit("the loop decided nothing")
    decision = experiment.decision
    speeds = [
        (
            run.run,
            run.start.batch,
            run.end.calibration.gflops,
            run.evaluation.bpb if run.evaluation else None,
        )
        for side in (experiment, state.experiments.get(decision.against or "", experiment))
        for run in side.runs.values()
        if run.start and run.end and run.end.calibration
    ]
    print(
        json.dumps(
            {
                "experiment": experiment.id,
                "verdict": decision.verdict,
                "drift": decision.drift,
                "reason": decision.reason,
                "runs": speeds,
            },
            indent=2,
        )
    )
    print(
        f"calibration medians: {statistics.median(s for _, _, s, _ in speeds):.1f} GFLOP/s",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("aa", "hog"):
        command = sub.add_parser(name)
        command.add_argument("--workspace", type=Path, required=True)
        command.add_argument("--budget", type=float, default=20.0)
    sub.choices["aa"].add_argument("--comparisons", type=int, default=20)
    sub.choices["aa"].add_argument("--runs", type=int, default=2)
    sub.choices["aa"].add_argument("--entry", default="experiments/train.py")
    sub.choices["aa"].add_argument("--fresh-seeds", action="store_true")
    sub.choices["aa"].add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    {"aa": aa, "hog": hog}[args.command](args)


if __name__ == "__main__":
    main()
