"""The whole evaluation of the default model after a training run, and what its isolation costs.

    .venv/bin/python benchmarks/evaluation.py --workspace WS [--budget 300] [--run-dir DIR]
        [--repeats 3] [--samples 8] [--max-tokens 256] [--split] [--score-here]

WS is a workspace whose bpe:4096 token caches are prepared (`vibe-research data prepare
--tokenizer bpe:4096` there); its sandbox.toml applies.

1. Trains vibe_research/templates/experiments/train.py (its defaults) for --budget seconds in a
   subprocess, as benchmarks/trainer.py does, unless --run-dir names a run it trained.
2. Evaluates that run as the runner does (runs/measure.py: the scorer and the model process, each
   in its sandbox): the checks, the 500 validation stories, --samples samples of --max-tokens;
   the split (load, scoring, checks, sampling) and the whole against 10% of a 300 s budget.
3. Scoring alone, --repeats times, interleaved: the main pass through the model process (the
   same sandboxed evaluation with no samples: its score_s) against the same scorer code
   (lm.scoring.score_windows and RowReader) on the same model loaded in the scorer's own process
   (lm.sessions.LocalModel: no second process, no shared buffer, no sandbox), once in a fresh
   process per repeat, as the evaluator scored before the isolation (one process per
   evaluation, its kernels and allocator cold), and once in this process, warm from the repeats
   before. The ratio of the medians to the fresh process is what the isolation costs; the target
   is at most 1.05. The ratio to the warm process is shown beside it.

With --split (and --run-dir) only the main pass, timed per request, alternating in this process
and through a model process --repeats times each: the seconds waiting for answers and the
seconds reading them, to show which of the two the isolation slows.

Prints markdown tables on stdout, progress on stderr. Load from other processes moves every
number: run it on an idle machine, and compare only numbers of one invocation.
"""

import argparse
import importlib.util
import json
import logging
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vibe_research.lm.evaluate import EvalResult, valid_stream
from vibe_research.lm.scoring import RowReader, score_windows, story_windows
from vibe_research.lm.sessions import Answer, LocalModel, ModelProcess, Session
from vibe_research.lm.tokenizer import load_tokenizer
from vibe_research.research.workspace import Workspace
from vibe_research.runs.measure import Measurement, run_measurement
from vibe_research.sandbox.policy import load_policy
from vibe_research.sandbox.probe import probe

TEMPLATE = (
    Path(__file__).resolve().parents[1] / "vibe_research" / "templates" / "experiments" / "train.py"
)
SAME_BPB = 1e-6  # the largest bpb difference the two scoring paths may show (float32 rounding)
BUDGET_S = 300  # the research loop's training budget the evaluation is compared with
log = logging.getLogger("benchmarks.evaluation")


def train(workspace: Path, out: Path, budget: float) -> None:
    command = [sys.executable, str(TEMPLATE), "--out", str(out), "--budget", f"{budget:g}"]
    done = subprocess.run(
        command, cwd=workspace, capture_output=True, text=True, check=False, timeout=budget + 900
    )
    if done.returncode != 0:
        raise SystemExit(f"train.py failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def sandboxed_evaluation(
    workspace: Workspace, run_dir: Path, samples: int, max_tokens: int
) -> EvalResult:
    """One evaluation exactly as the runner's, its result read from the scorer's stdout."""
    policy = load_policy(workspace.sandbox_file)
    stdout: list[str] = []
    stderr: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vibe-bench-") as scratch:
        measurement = Measurement(
            workspace=workspace.root,
            entry=TEMPLATE,
            run_dir=run_dir,
            cache_dir=workspace.cache.resolve(),
            scratch=Path(scratch),
            out_dir=Path(scratch),
        )
        arguments = [
            "--entry",
            str(TEMPLATE),
            "--run-dir",
            str(run_dir),
            "--cache-dir",
            str(workspace.cache.resolve()),
            "--samples",
            str(samples),
            "--max-tokens",
            str(max_tokens),
            "--timeout",
            f"{policy.eval_timeout_s:g}",
        ]
        run_measurement(
            measurement,
            "vibe_research.lm.evaluate",
            arguments,
            policy,
            probe(policy),
            "bench",
            policy.eval_timeout_s,
            stdout.append,
            stderr.append,
            lambda line: None,
        )
    if not "".join(stdout).strip():
        raise SystemExit(f"the evaluation failed: {''.join(stderr).strip()[-500:]}")
    result = EvalResult.model_validate_json("".join(stdout))
    if not result.ok:
        raise SystemExit(f"the model was rejected: {result.reason}")
    return result


def local_model(run_dir: Path) -> LocalModel:
    """train.py's load_model, in this process."""
    spec = importlib.util.spec_from_file_location("bench_train", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return LocalModel(module.load_model(run_dir))


def in_process_scoring(workspace: Workspace, run_dir: Path) -> tuple[float, float]:
    """Seconds of the main pass, and the bpb, with the model loaded in this process."""
    source = local_model(run_dir)
    tokenizer = load_tokenizer(source.info.tokenizer, workspace.cache)
    stream = valid_stream(tokenizer, workspace.cache, None).tokens
    windows = story_windows(stream, tokenizer.eot, source.info.context_length)
    started = time.perf_counter()
    with source.session() as session:
        picked = score_windows(session, stream, windows, tokenizer.eot, RowReader())
    seconds = time.perf_counter() - started
    bytes_ = int(tokenizer.token_bytes[stream[1:]].sum())
    return seconds, float(-picked.sum()) / math.log(2) / bytes_


class TimedSession:
    """A session whose logprobs calls are timed: the seconds spent waiting for answers."""

    def __init__(self, session: Session) -> None:
        self.session, self.info, self.waiting = session, session.info, 0.0

    def logprobs(self, tokens: np.ndarray, lengths: np.ndarray, last_only: bool = False) -> Answer:
        started = time.perf_counter()
        answer = self.session.logprobs(tokens, lengths, last_only)
        self.waiting += time.perf_counter() - started
        return answer


def request_split(session: Session, stream: np.ndarray, eot: int) -> tuple[float, float]:
    """The main pass (lm.scoring.score_windows): seconds waiting for the answers, seconds reading
    them (the rest of the pass)."""
    timed = TimedSession(session)
    windows = story_windows(stream, eot, session.info.context_length)
    started = time.perf_counter()
    score_windows(timed, stream, windows, eot, RowReader())
    return timed.waiting, time.perf_counter() - started - timed.waiting


def split(workspace: Workspace, run_dir: Path, repeats: int) -> str:
    """Where the isolation's cost lies: each request's wait and read, in this process against
    through a model process (unsandboxed: ModelProcess.spawn), alternating, `repeats` each."""
    tokenizer = load_tokenizer(local_model(run_dir).info.tokenizer, workspace.cache)
    stream = valid_stream(tokenizer, workspace.cache, None).tokens
    deadline = time.monotonic() + 3600
    times: dict[str, list[tuple[float, float]]] = {"in this process": [], "model process": []}
    with ModelProcess.spawn(TEMPLATE, run_dir, deadline, workspace.cache.resolve()) as process:
        for repeat in range(repeats):
            log.info("request split, repeat %d of %d", repeat + 1, repeats)
            with local_model(run_dir).session() as session:
                times["in this process"].append(request_split(session, stream, tokenizer.eot))
            with process.session() as session:
                times["model process"].append(request_split(session, stream, tokenizer.eot))
    lines = [
        "| scoring | waiting for answers (median s) | reading them (median s) | each (wait + read) |"
    ]
    lines.append("|---|---:|---:|---|")
    for name, pairs in times.items():
        each = " / ".join(f"{w:.2f} + {r:.2f}" for w, r in pairs)
        waits, reads = [w for w, _ in pairs], [r for _, r in pairs]
        lines.append(
            f"| {name} | {statistics.median(waits):.3f} | {statistics.median(reads):.3f} | {each} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="training seconds")
    parser.add_argument("--run-dir", type=Path, help="a run train.py trained: skip training")
    parser.add_argument("--repeats", type=int, default=3, help="scoring comparisons")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument(
        "--split",
        action="store_true",
        help="with --run-dir: only the per-request split of waiting and reading, and stop",
    )
    parser.add_argument(
        "--score-here",
        action="store_true",
        help="with --run-dir: score once in this process, print [seconds, bpb] and stop",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    workspace = Workspace(args.workspace.resolve())
    if args.score_here:
        if args.run_dir is None:
            raise SystemExit("--score-here needs --run-dir: a run train.py trained")
        print(json.dumps(in_process_scoring(workspace, args.run_dir.resolve())))
        return
    if args.split:
        if args.run_dir is None:
            raise SystemExit("--split needs --run-dir: a run train.py trained")
        print(split(workspace, args.run_dir.resolve(), args.repeats))
        return
    with tempfile.TemporaryDirectory(prefix="vibe-bench-run-") as scratch:
        run_dir = args.run_dir.resolve() if args.run_dir else Path(scratch) / "run"
        if args.run_dir is None:
            log.info("training train.py for %g s", args.budget)
            train(workspace.root, run_dir, args.budget)
        log.info("evaluating")
        full = sandboxed_evaluation(workspace, run_dir, args.samples, args.max_tokens)
        through, fresh, warm, apart = [], [], [], 0.0
        for repeat in range(args.repeats):
            log.info("scoring, repeat %d of %d", repeat + 1, args.repeats)
            scored = sandboxed_evaluation(workspace, run_dir, 0, 1)
            through.append(scored.score_s)
            for times, score in ((fresh, fresh_process_scoring), (warm, in_process_scoring)):
                seconds, bpb = score(workspace, run_dir)
                times.append(seconds)
                apart = max(apart, abs(bpb - scored.bpb))
    print(report(full, through, fresh, warm))
    # float32 kernels may round differently in another process (thread count, buffer alignment);
    # a difference beyond rounding means the two paths did not score the same thing
    print(f"\nlargest bpb difference between the two paths: {apart:.2e} (at most {SAME_BPB:g})")
    if apart > SAME_BPB:
        raise SystemExit(f"the two paths scored differently: bpb {apart:.2e} apart")


def fresh_process_scoring(workspace: Workspace, run_dir: Path) -> tuple[float, float]:
    """in_process_scoring in a new process of its own (`--score-here`), as one evaluation ran."""
    command = [
        sys.executable,
        __file__,
        "--workspace",
        str(workspace.root),
        "--run-dir",
        str(run_dir),
        "--score-here",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"scoring in a fresh process failed: {done.stderr.strip()[-500:]}")
    seconds, bpb = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, bpb


def report(full: EvalResult, through: list[float], fresh: list[float], warm: list[float]) -> str:
    checks, sampling = full.checks, full.sampling
    steps = sum(sample.tokens for sample in full.samples)
    ratio = statistics.median(through) / statistics.median(fresh)
    warm_ratio = statistics.median(through) / statistics.median(warm)
    lines = [
        f"bpb {full.bpb:.4f} on {full.stories} stories ({full.tokens:,} tokens); torch threads: "
        f"{full.threads} in the model process, {torch.get_num_threads()} in this one",
        "",
        "| part | seconds | what |",
        "|---|---:|---|",
        f"| load | {full.load_s:.2f} | both processes up, the first session's load_model, the valid split |",
        f"| scoring | {full.score_s:.2f} | {full.tokens:,} rows, every one checked normalised |",
        f"| checks | {full.check_s:.2f} | {checks.windows_checked} windows, {checks.rows_checked:,} rows asked again in a fresh process |",
        f"| sampling | {full.sample_s:.2f} | {len(full.samples)} samples, {steps} steps "
        f"({'incremental' if sampling and sampling.incremental else 'full windows'}), "
        f"{sampling.steps_checked if sampling else 0} spot checks |",
        f"| whole | {full.wall_s:.2f} | {100 * full.wall_s / BUDGET_S:.1f}% of a {BUDGET_S} s budget (target: at most 10%) |",
        "",
        "| scoring | median s | each |",
        "|---|---:|---|",
        f"| through the model process | {statistics.median(through):.2f} | {' / '.join(f'{s:.2f}' for s in through)} |",
        f"| in a fresh process | {statistics.median(fresh):.2f} | {' / '.join(f'{s:.2f}' for s in fresh)} |",
        f"| in this process, warm | {statistics.median(warm):.2f} | {' / '.join(f'{s:.2f}' for s in warm)} |",
        f"| ratio to the fresh process | {ratio:.3f} | target: at most 1.05 |",
        f"| ratio to the warm process | {warm_ratio:.3f} | |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
