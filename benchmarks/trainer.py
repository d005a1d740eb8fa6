"""The baseline trainer's speed per mode, its bits per byte per budget, and configuration sweeps.

    .venv/bin/python benchmarks/trainer.py speed --workspace WS [--budget 60] [--repeats 1] [--modes ...]
    .venv/bin/python benchmarks/trainer.py bpb   --workspace WS [--budgets 60 300] [--seeds 3] [--set key=value ...]
    .venv/bin/python benchmarks/trainer.py sweep --workspace WS [--budget 60] [--seeds 2] --variant "n_embd=128 lr=0.004" ...

WS is a workspace whose token caches are prepared (`vibe-research data prepare --tokenizer bpe:4096`
there). Every run is `templates/experiments/train.py` in a subprocess, exactly as the research loop
runs it, and every bpb is measured by `python -m vibe_research.lm.evaluate` in another process.

- speed: tokens/s of eager fp32, compile fp32, eager bf16 and compile+bf16 (or the --modes named)
  on the default config; the modes are interleaved per repeat so load from other processes hits
  them alike, and each ratio is to the first mode. "train tok/s"
  counts the training loop (after compiling); "process tok/s" divides by the whole process.
- bpb: validation bits per byte after each budget, median over seeds.
- sweep: each variant (space-separated overrides of the defaults) for each seed, ranked by median bpb.

Prints a markdown table on stdout (progress on stderr). On a shared machine, load from other
processes moves every number: compare only rows of one invocation.
"""

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = (
    Path(__file__).resolve().parents[1] / "vibe_research" / "templates" / "experiments" / "train.py"
)
MODES = {
    "eager fp32": ("compile=off", "dtype=fp32"),
    "compile fp32": ("compile=on", "dtype=fp32"),
    "eager bf16": ("compile=off", "dtype=bf16"),
    "compile+bf16": ("compile=on", "dtype=bf16"),
}
log = logging.getLogger("benchmarks.trainer")


@dataclass(frozen=True)
class Run:
    overrides: tuple[str, ...]
    seed: int
    done: dict  # the run's `done` event
    train_tokens_per_s: float  # from the last step event: the training loop alone
    bpb: float | None


def train(
    workspace: Path, out: Path, seed: int, budget: float, overrides: tuple[str, ...]
) -> tuple[dict, float]:
    """Run train.py; return its done event and the training loop's tokens/s."""
    command = [
        sys.executable,
        str(TEMPLATE),
        "--out",
        str(out),
        "--seed",
        str(seed),
        "--budget",
        str(budget),
    ]
    for item in overrides:
        command += ["--set", item]
    # compiling cannot be cut short: under heavy load it overruns the budget by minutes
    done = subprocess.run(
        command, cwd=workspace, capture_output=True, text=True, check=False, timeout=budget + 600
    )
    if done.returncode != 0:
        raise SystemExit(
            f"train.py {' '.join(overrides)} failed ({done.returncode}): {done.stderr.strip()[-500:]}"
        )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"event"')]
    steps = [e for e in events if e["event"] == "step"]
    return events[-1], steps[-1]["tokens_per_s"] if steps else 0.0


def evaluate(workspace: Path, run_dir: Path, valid: Path | None) -> float:
    """Validation bits per byte of the model in run_dir (no samples)."""
    command = [
        sys.executable,
        "-m",
        "vibe_research.lm.evaluate",
        "--entry",
        str(TEMPLATE),
        "--run-dir",
        str(run_dir),
        "--samples",
        "0",
    ]
    if valid is not None:
        command += ["--valid", str(valid)]
    done = subprocess.run(
        command, cwd=workspace, capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        raise SystemExit(
            f"evaluation of {run_dir} failed ({done.returncode}): {done.stderr.strip()[-500:]}"
        )
    return json.loads(done.stdout)["bpb"]


def measure(
    args: argparse.Namespace,
    scratch: Path,
    overrides: tuple[str, ...],
    seed: int,
    budget: float,
    score: bool,
) -> Run:
    out = scratch / f"run-{len(list(scratch.iterdir()))}"
    done, train_tps = train(args.workspace, out, seed, budget, overrides)
    bpb = evaluate(args.workspace, out, args.valid) if score else None
    log.info(
        "%s seed %d: %s tok/s, bpb %s", " ".join(overrides) or "defaults", seed, train_tps, bpb
    )
    return Run(overrides, seed, done, train_tps, bpb)


def speed(args: argparse.Namespace, scratch: Path) -> list[str]:
    runs: dict[str, list[Run]] = {mode: [] for mode in args.modes}
    for _ in range(args.repeats):
        for mode in args.modes:
            overrides = (*args.overrides, *MODES[mode])
            runs[mode].append(measure(args, scratch, overrides, 0, args.budget, score=False))
    first = args.modes[0]
    base = statistics.median(r.train_tokens_per_s for r in runs[first])
    rows = [
        f"| mode | params | train tok/s | process tok/s | vs {first} |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode, mode_runs in runs.items():
        train_tps = statistics.median(r.train_tokens_per_s for r in mode_runs)
        process_tps = statistics.median(r.done["tokens_per_s"] for r in mode_runs)
        rows.append(
            f"| {mode} | {mode_runs[0].done['params']:,} | {train_tps:,.0f} | {process_tps:,.0f} | {train_tps / base:.2f}x |"
        )
    return rows


def bpb(args: argparse.Namespace, scratch: Path) -> list[str]:
    rows = [
        "| budget (s) | params | tokens seen | train tok/s | longest run (s) | bpb per seed | median bpb |",
        "|---:|---:|---:|---:|---:|---|---:|",
    ]
    for budget in args.budgets:
        runs = [
            measure(args, scratch, tuple(args.overrides), seed, budget, score=True)
            for seed in range(args.seeds)
        ]
        rows.append(summary_row(f"{budget:g}", runs))
    return rows


def sweep(args: argparse.Namespace, scratch: Path) -> list[str]:
    variants = [tuple(text.split()) for text in args.variant] or [()]
    results = []
    for seed in range(args.seeds):  # seed-major: load drifts over the sweep hit every variant alike
        for variant in variants:
            results.append(
                measure(args, scratch, (*args.overrides, *variant), seed, args.budget, score=True)
            )
    rows = [
        "| variant | params | tokens seen | train tok/s | longest run (s) | bpb per seed | median bpb |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    grouped = [
        [r for r in results if r.overrides == (*args.overrides, *variant)] for variant in variants
    ]
    for variant, runs in sorted(
        zip(variants, grouped, strict=False),
        key=lambda pair: statistics.median(r.bpb for r in pair[1]),
    ):
        rows.append(summary_row(" ".join(variant) or "defaults", runs))
    return rows


def summary_row(label: str, runs: list[Run]) -> str:
    tokens = statistics.median(r.done["tokens"] for r in runs)
    tps = statistics.median(r.train_tokens_per_s for r in runs)
    scores = [r.bpb for r in runs]
    per_seed = " / ".join(f"{s:.3f}" for s in scores)
    longest = max(r.done["elapsed_s"] for r in runs)  # process wall clock at the done event
    return (
        f"| {label} | {runs[0].done['params']:,} | {tokens / 1e6:.2f}M | {tps:,.0f} | {longest:.1f} | {per_seed} "
        f"| {statistics.median(scores):.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed", "bpb", "sweep"])
    parser.add_argument(
        "--workspace", type=Path, required=True, help="workspace with prepared token caches"
    )
    parser.add_argument("--budget", type=float, default=60, help="seconds per run (speed, sweep)")
    parser.add_argument(
        "--budgets", type=float, nargs="+", default=[60, 300], help="seconds per run (bpb)"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--repeats", type=int, default=1, help="interleaved repeats of every mode (speed)"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        default=list(MODES),
        help="modes to time, in this order; ratios are to the first (speed)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help='overrides like "n_embd=128 lr=0.004" (sweep)',
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override for every run",
    )
    parser.add_argument(
        "--valid", type=Path, help="score this story file instead of the workspace's valid split"
    )
    args = parser.parse_args()
    args.workspace = args.workspace.resolve()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as scratch:
        rows = {"speed": speed, "bpb": bpb, "sweep": sweep}[args.what](args, Path(scratch))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
