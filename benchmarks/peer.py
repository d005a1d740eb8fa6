"""The trainer against llama2.c at equal size: steady tokens/s and bits per byte, alternating runs.

    .venv/bin/python benchmarks/peer.py --workspace WS --peer-scratch /tmp/l2c [--pairs 3]
        [--budget 120] [--peer-python /tmp/l2c-venv/bin/python] [--set key=value ...]
        [--peer-variant= --peer-variant=--dtype=float32 ...]

WS: a workspace whose train and valid caches are built on the same data llama2.c's prep.py read
(`vibe-research init WS --data ../shared/data/tinystories-24m && vibe-research data prepare`),
and --peer-scratch: the scratch folder of that prep.py (`../shared/peers/llama2c/README.md`).

Each pair runs llama2.c's run.sh (dim 192, 4 layers, 4 heads, context 256, batch 32, bf16
autocast, torch.compile, a cold compile cache as run.sh makes it) and then this project's trainer
through `vibe-research train` (sandboxed, as the loop runs it) at the same size: 4 layers, width
192, 4 heads, context 256, batch 32, AdamW, plus any --set. A first run of ours compiles into the
workspace's shared cache, as the loop's smoke run does, and is not counted. Steady tokens/s:
llama2.c's own figure (iterations 20-60); ours from the step events between step 25 and step 75,
Δtokens / Δelapsed. Both score the same validation stories (WS's valid split = the peer's
valid.txt). Each --peer-variant (extra `--key=value` arguments of llama2.c's train.py, empty for
run.sh's own settings; written with "=", `--peer-variant=--dtype=float32`, since argparse reads a
separate value that starts with "--" as an option) runs once per pair, before ours. Prints a
markdown table and each peer variant's medians against ours.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "llama2c"
SAME_SIZE = (
    "n_layer=4",
    "n_embd=192",
    "n_head=4",
    "context=256",
    "batch_size=32",
    "optimizer=adamw",
    "log_every=25",
)
WARM_UP_S = 125.0
RESULT = re.compile(r"bpb=(\S+) steady_tokens_per_s=(\S+) steps=(\d+) wall_s=(\S+) params=(\d+)")


def peer(args: argparse.Namespace, name: str, variant: str) -> dict:
    env = {**os.environ, "PYTHON": args.peer_python}
    extra = variant.split()
    done = subprocess.run(
        [
            "bash",
            str(PEER / "run.sh"),
            str(args.peer_scratch),
            name,
            "192",
            f"{args.budget:g}",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=args.budget + 1200,
    )
    found = RESULT.search(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")
    if done.returncode != 0 or found is None:
        raise SystemExit(f"llama2.c run {name} failed: {done.stderr.strip()[-800:]}")
    bpb, steady, steps, wall, params = found.groups()
    train_log = (args.peer_scratch / "logs" / f"{name}.train.log").read_text(encoding="utf-8")
    # the line of iteration 0 ends with the elapsed time on the budget's clock: "| t 51.5s"
    first = re.search(r"^0 \|.*\| t (\d+\.\d+)s$", train_log, re.MULTILINE)
    return {
        "system": " ".join(("llama2.c", *extra)),
        "bpb": float(bpb),
        "steady": float(steady) if steady != "n/a" else None,
        "steps": int(steps),
        "params": int(params),
        "wall_s": float(wall),
        "first_step_s": float(first.group(1)) if first else None,
    }


def ours(args: argparse.Namespace, budget: float | None = None) -> dict:
    budget = args.budget if budget is None else budget
    sets = [arg for item in (*SAME_SIZE, *args.set) for arg in ("--set", item)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vibe_research",
            "train",
            "--budget",
            f"{budget:g}",
            "--json",
            *sets,
        ],
        cwd=args.workspace,
        capture_output=True,
        text=True,
        timeout=budget + 1200,
    )
    if done.returncode != 0:
        raise SystemExit(f"our run failed: {done.stderr.strip()[-800:]}")
    [result] = json.loads(done.stdout)
    run_dir = Path(result["spec"]["run_dir"])
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    window = [e for e in steps if 25 <= e["step"] <= 75]
    steady = None
    if len(window) >= 2:
        steady = (window[-1]["tokens"] - window[0]["tokens"]) / (
            window[-1]["elapsed_s"] - window[0]["elapsed_s"]
        )
    return {
        "system": "vibe-research",
        "bpb": result["evaluation"]["bpb"] if result["evaluation"] else None,
        "steady": steady,
        "steps": result["summary"]["steps"],
        "params": result["summary"]["params"],
        "wall_s": result["duration_s"],
        "first_step_s": steps[0]["elapsed_s"] if steps else None,
        "calibration": (result.get("calibration") or {}).get("gflops"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--peer-scratch", type=Path, required=True)
    parser.add_argument("--peer-python", default=os.environ.get("PYTHON", "python3"))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--peer-variant",
        action="append",
        metavar="ARGS",
        help="extra arguments of llama2.c's train.py, with '=': --peer-variant=--dtype=float32 "
        "(repeatable; default: one variant, run.sh's own settings)",
    )
    args = parser.parse_args()
    variants = args.peer_variant or [""]
    print(
        "warm-up run of ours (compiles into the workspace cache, as the smoke run does)",
        file=sys.stderr,
    )
    # compiling does not depend on the budget, so a shorter warm-up fills the same cache (auto
    # compiles from WARM_UP_S)
    ours(args, min(args.budget, WARM_UP_S))
    runs: list[dict] = []
    for pair in range(args.pairs):
        for index, variant in enumerate(variants):
            runs.append(peer(args, f"bench{os.getpid()}-{pair}-{index}", variant))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
        runs.append(ours(args))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    print("| system | params | steps | steady tok/s | first step (s) | bpb |")
    print("|---|---:|---:|---:|---:|---:|")
    for run in runs:
        print(
            f"| {run['system']} | {run['params']:,} | {run['steps']} | {_shown(run['steady'], ',.0f')} "
            f"| {_shown(run['first_step_s'], '.1f')} | {_shown(run['bpb'], '.4f')} |"
        )
    systems = list(dict.fromkeys(run["system"] for run in runs))
    steady = {system: _median(runs, system, "steady") for system in systems}
    bpbs = {system: _median(runs, system, "bpb") for system in systems}
    ours_steady, ours_bpb = steady["vibe-research"], bpbs["vibe-research"]
    print(f"\n{args.pairs} pairs of {args.budget:g} s, alternating; medians:")
    for system in systems[:-1]:
        speed = (
            f"steady tokens/s {steady[system]:,.0f}, ours {ours_steady:,.0f}: "
            f"{ours_steady / steady[system]:.2f}x"
            if steady[system] and ours_steady
            else "no steady rate on one side (fewer steps than its steady window)"
        )
        quality = (
            f"bpb {bpbs[system]:.4f}, ours {ours_bpb:.4f} ({ours_bpb / bpbs[system]:.3f}x)"
            if bpbs[system] and ours_bpb
            else "no bpb on one side"
        )
        print(f"- {system}: {speed}; {quality}")


def _median(runs: list[dict], system: str, key: str) -> float | None:
    """The median of one system's runs' values, those that have one; None where none has."""
    values = [run[key] for run in runs if run["system"] == system and run[key]]
    return statistics.median(values) if values else None


def _shown(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
