"""One measurement of a trained model: the scorer and the model process, each in a sandbox of
its own, joined by a socketpair (the protocol of vibe_research/lm/protocol.py).

- The scorer (`python -m vibe_research.lm.evaluate`, or `.generate` for one sample) is
  vibe_research.lm alone, never experiment code. It may read the tokenizers and the validation
  (and test) tokens, and write `out_dir` (the run folder, for eval.json) and its temp folder.
- The model process (`python -m vibe_research.lm.serve`) runs the experiment's load_model. It
  may read the experiment files, the entry's folder, its run folder (read-only), the runs it
  builds on, the tokenizers and the train tokens; it may write its scratch folder alone, which
  it empties after every session; the validation and test tokens are denied. No network, the
  allow-listed environment (HOME and TMPDIR inside the scratch folder), and on Linux no System V
  or POSIX IPC or keyrings either.

The two are separate Landlock domains, so neither can trace or signal the other.
"""

import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vibe_research.runs.process import ProcessEnd, supervise
from vibe_research.sandbox.command import fresh_folder, sandboxed
from vibe_research.sandbox.plan import RunPaths
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import ProtectionReport

MARGIN_S = 30.0  # past the scorer's own deadline before its process is stopped from outside


@dataclass(frozen=True)
class Measurement:
    workspace: Path
    entry: Path  # the experiment file defining load_model
    run_dir: Path
    cache_dir: Path
    scratch: Path  # holds the two temp folders, score/ and model/ (made fresh here)
    out_dir: Path  # what the scorer may write
    references: list[Path] = field(default_factory=list)  # run folders the model builds on
    scorer_reads: list[Path] = field(default_factory=list)  # e.g. a --valid story file


@dataclass(frozen=True)
class MeasurementEnd:
    scorer: ProcessEnd
    model: ProcessEnd


def model_paths(measurement: Measurement) -> RunPaths:
    tokens = measurement.cache_dir / "tokens"
    return RunPaths(
        workspace=measurement.workspace,
        run_dir=measurement.run_dir,
        tmp_dir=measurement.scratch / "model",
        reads=[
            measurement.cache_dir / "tokenizers",
            tokens / "train",
            measurement.entry.parent,
            *measurement.references,
        ],
        denies=[tokens / "valid", tokens / "test"],
        confined=True,
    )


def scorer_paths(measurement: Measurement) -> RunPaths:
    tokens = measurement.cache_dir / "tokens"
    return RunPaths(
        workspace=measurement.workspace,
        run_dir=measurement.out_dir,
        tmp_dir=measurement.scratch / "score",
        reads=[
            measurement.cache_dir / "tokenizers",
            tokens / "valid",
            tokens / "test",
            *measurement.scorer_reads,
        ],
    )


def run_measurement(
    measurement: Measurement,
    module: str,
    arguments: list[str],
    policy: SandboxPolicy,
    report: ProtectionReport,
    name: str,
    limit_s: float,
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
    on_model_output: Callable[[str], None],
) -> MeasurementEnd:
    """Run `python -m module *arguments --model-fd N` against a fresh model process until the
    scorer ends (its own deadline is `limit_s`); then stop the model process."""
    model, scorer = model_paths(measurement), scorer_paths(measurement)
    for folder in (model.tmp_dir, scorer.tmp_dir):
        fresh_folder(folder)
    environ = dict(os.environ) | {"VIBE_CACHE_DIR": str(measurement.cache_dir)}
    scorer_end, model_end = socket.socketpair()
    model_fd, scorer_fd = model_end.detach(), scorer_end.detach()
    commands = []
    try:
        model_command = sandboxed(
            policy,
            report,
            model,
            [
                sys.executable,
                "-m",
                "vibe_research.lm.serve",
                "--entry",
                str(measurement.entry),
                "--run-dir",
                str(measurement.run_dir),
                "--control-fd",
                str(model_fd),
                "--scratch",
                str(model.tmp_dir),
            ],
            name=f"{name}-model",
            environ=environ,
        )
        commands.append(model_command)
        scorer_command = sandboxed(
            policy,
            report,
            scorer,
            [sys.executable, "-m", module, *arguments, "--model-fd", str(scorer_fd)],
            name=f"{name}-score",
            environ=environ,
        )
        commands.append(scorer_command)
    except BaseException:
        for command in commands:
            command.close()
        os.close(model_fd)
        os.close(scorer_fd)
        raise
    cap = int(policy.run_dir_gb * 2**30)
    stop = threading.Event()
    ended: list[ProcessEnd] = []
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            ended.append(
                supervise(
                    model_command,
                    measurement.workspace,
                    on_model_output,
                    on_model_output,
                    limit_s + MARGIN_S,
                    policy.kill_after_s,
                    model.tmp_dir,
                    cap,
                    stop,
                    pass_fds=(model_fd,),
                )
            )
        except BaseException as exc:  # handed to the caller's thread below, not swallowed
            failed.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        end = supervise(
            scorer_command,
            measurement.workspace,
            on_stdout,
            on_stderr,
            limit_s + MARGIN_S,
            policy.kill_after_s,
            scorer.run_dir,
            cap,
            pass_fds=(scorer_fd,),
        )
    finally:
        stop.set()
        thread.join()
        for command in commands:
            command.close()
    if failed:
        raise failed[0]
    return MeasurementEnd(end, ended[0])
