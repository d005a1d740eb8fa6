"""Local executor vs Ray: wall time of one four-run proposal, and what Ray costs per run.

    .venv/bin/python benchmarks/executor.py [--runs 4] [--budget 15] [--entry FILE] [--set key=value ...] [--json]

Builds a throwaway workspace (synthetic stories, the `bytes` tokenizer, the baseline
experiments/train.py with a tiny model), then runs the same proposal twice: on the LocalExecutor
(one run after another) and on the RayExecutor against a local Ray cluster of two one-CPU nodes
(`ray.cluster_utils.Cluster`: a head and a worker node), so two runs go side by side. Every run
describes, trains for --budget seconds of wall clock and is evaluated, each in the sandbox.

Reported: both wall times and their ratio; the cluster's start time (paid once, not counted in the
Ray wall time); and `overhead_per_run_s`, the slot-seconds the Ray wall time holds beyond the
runs' own `duration_s` (connecting, shipping code and results, scheduling, a slot left idle at the
end), divided by the runs. Training stops at its wall-clock budget however loaded the machine is,
so two runs on two cores do the same number of seconds but fewer steps; the evaluation's share
grows. Both executors run with sandbox threads = 1, the count Ray gives a one-CPU task. On a
shared machine the numbers move with other people's load: run it twice.
"""

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from vibe_research.lm.corpus import DataSource, load_corpus
from vibe_research.lm.tokenizer import load_tokenizer
from vibe_research.lm.tokens import prepare_split
from vibe_research.runs.executor import Executor, LocalExecutor
from vibe_research.runs.ray_executor import RayExecutor
from vibe_research.runs.result import RunResult
from vibe_research.runs.settings import RaySettings
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.policy import SandboxPolicy

TEMPLATE = (
    Path(__file__).resolve().parents[1] / "vibe_research" / "templates" / "experiments" / "train.py"
)
TINY = {
    "tokenizer": "bytes",
    "n_layer": "1",
    "n_head": "2",
    "n_embd": "32",
    "context": "64",
    "batch_size": "8",
    "compile": "off",
    "threads": "1",
    "log_every": "5",
}
NODES = 2  # one-CPU Ray nodes: two runs side by side


def build_workspace(root: Path, entry: Path) -> Path:
    """A workspace with `entry` as experiments/train.py and a bytes token cache of synthetic stories."""
    (root / "experiments").mkdir(parents=True)
    shutil.copy(entry, root / "experiments" / "train.py")
    cache = root / ".vibe" / "cache"
    corpus = load_corpus(
        DataSource(source="synthetic", synthetic_train_stories=2000, synthetic_valid_stories=50),
        cache,
    )
    tokenizer = load_tokenizer("bytes", cache)
    prepare_split(corpus.train, tokenizer, cache)
    prepare_split(corpus.valid, tokenizer, cache)
    return root


def proposal(
    workspace: Path, name: str, runs: int, budget_s: float, overrides: dict[str, str]
) -> list[RunSpec]:
    return [
        RunSpec(
            run_id=f"{name}-s{seed}",
            workspace=workspace,
            seed=seed,
            budget_s=budget_s,
            overrides=overrides,
            run_dir=workspace / ".vibe" / "runs" / f"{name}-s{seed}",
            cache_dir=workspace / ".vibe" / "cache",
            samples=2,
        )
        for seed in range(runs)
    ]


def timed(executor: Executor, specs: list[RunSpec]) -> tuple[float, list[RunResult]]:
    began = time.perf_counter()
    results = executor.execute(specs)
    wall = time.perf_counter() - began
    failed = [
        f"{result.run_id}: {result.outcome} {result.reason}"
        for result in results
        if result.outcome != "ok"
    ]
    if failed:
        raise SystemExit("runs failed, the timing means nothing:\n" + "\n".join(failed))
    return wall, results


def measure(runs: int, budget_s: float, entry: Path, overrides: dict[str, str]) -> dict:
    from ray.cluster_utils import Cluster

    # One thread per run in both: Ray sets OMP_NUM_THREADS to a task's CPUs (1 here), while a local
    # run would otherwise use every core; a loaded two-core machine punishes the extra threads.
    policy = SandboxPolicy(threads=1)
    with tempfile.TemporaryDirectory(prefix="vibe-bench-") as scratch:
        workspace = build_workspace(Path(scratch) / "ws", entry)
        local_wall, local = timed(
            LocalExecutor(policy), proposal(workspace, "local", runs, budget_s, overrides)
        )
        began = time.perf_counter()
        cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        try:
            for _ in range(NODES - 1):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            start_s = time.perf_counter() - began
            ray_wall, remote = timed(
                RayExecutor(policy, RaySettings(address=cluster.address)),
                proposal(workspace, "ray", runs, budget_s, overrides),
            )
        finally:
            cluster.shutdown()
    busy = sum(result.duration_s for result in remote)
    return {
        "runs": runs,
        "budget_s": budget_s,
        "nodes": NODES,
        "threads_per_run": policy.threads,
        "entry": str(entry),
        "overrides": overrides,
        "local_wall_s": round(local_wall, 2),
        "ray_wall_s": round(ray_wall, 2),
        "speedup": round(local_wall / ray_wall, 2),
        "ideal_speedup": min(NODES, runs),
        "ray_cluster_start_s": round(start_s, 2),
        "local_mean_run_s": round(sum(result.duration_s for result in local) / runs, 2),
        "ray_mean_run_s": round(busy / runs, 2),
        "overhead_per_run_s": round((ray_wall * min(NODES, runs) - busy) / runs, 2),
        "local_mean_steps": round(sum(result.summary.steps for result in local) / runs, 1),
        "ray_mean_steps": round(sum(result.summary.steps for result in remote) / runs, 1),
        "bpb_local": [round(result.bpb, 4) for result in local],
        "bpb_ray": [round(result.bpb, 4) for result in remote],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="runs in the proposal")
    parser.add_argument("--budget", type=float, default=15.0, help="training seconds per run")
    parser.add_argument(
        "--entry",
        type=Path,
        default=TEMPLATE,
        help="experiment script (default: the baseline train.py)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override (default: a tiny bytes model)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    overrides = dict(item.split("=", 1) for item in args.set) if args.set else dict(TINY)
    report = measure(args.runs, args.budget, args.entry.resolve(), overrides)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        print(f"{key:>22}  {value}")


if __name__ == "__main__":
    main()
