"""One run, start to end: ask the entry for its config, train it in the sandbox, evaluate it (the
scorer and the model process, each sandboxed: runs/measure.py), and write RUN_DIR/result.json.
"""

import json
import logging
import os
import platform
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pydantic import ValidationError

from vibe_research.lm import atomic, fingerprint
from vibe_research.lm.evaluate import EvalResult, Scored
from vibe_research.lm.paths import spec_slug
from vibe_research.runs.calibrate import Calibration
from vibe_research.runs.compile_cache import (
    compile_dir,
    compile_environment,
    drop_truncated,
    link_inductor_tmp,
)
from vibe_research.runs.events import OnEvent, OutputRecorder
from vibe_research.runs.measure import Measurement, run_measurement
from vibe_research.runs.outcome import evaluation_outcome, training_outcome
from vibe_research.runs.process import ProcessEnd, supervise
from vibe_research.runs.result import Outcome, RunResult
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.command import fresh_folder, sandboxed
from vibe_research.sandbox.plan import RunPaths
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import ProtectionReport

log = logging.getLogger(__name__)

DESCRIBE_LIMIT_S = 120.0  # `--describe` imports torch and exits; minutes only on a starved machine
LINKING_S = 60.0  # a kernel's .so this fresh may still be being linked by another run (Ray)


class RunFailed(Exception):
    """A step before training failed; the run is recorded with this outcome and reason."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


def run_paths(spec: RunSpec, phase: str, tokenizer: str | None, policy: SandboxPolicy) -> RunPaths:
    """Describing and training read the train tokens of `tokenizer` and never the valid ones, and
    may read the other run folders its overrides name (fusion's base_run), and nothing else.
    (An evaluation's two processes get theirs from runs/measure.py.)"""
    tokens = spec.cache_dir / "tokens"
    paths = RunPaths(workspace=spec.workspace, run_dir=spec.run_dir, tmp_dir=spec.run_dir / "tmp")
    paths.reads.append(spec.cache_dir / "tokenizers")
    paths.reads += referenced_runs(spec.run_dir, spec.workspace, spec.overrides.values())
    if tokenizer:
        paths.reads.append(tokens / "train" / spec_slug(tokenizer))
    paths.denies += [tokens / "valid", tokens / "test"]
    if policy.compile_cache and phase == "train":
        compile_dir(spec.cache_dir).mkdir(parents=True, exist_ok=True)
        paths.writes.append(compile_dir(spec.cache_dir))
    return paths


def referenced_runs(run_dir: Path, workspace: Path, values: Iterable[object]) -> list[Path]:
    """Run folders beside `run_dir` that a setting names, such as fusion's base_run: read-only
    for this run. A path anywhere else is not granted, so a setting cannot open the workspace."""
    runs = run_dir.parent.resolve()
    found = []
    for value in values:
        if not isinstance(value, str) or not value:
            continue
        path = Path(value) if Path(value).is_absolute() else workspace / value
        path = path.resolve()
        if path.parent == runs and path != run_dir.resolve() and path.is_dir():
            found.append(path)
    return found


def _environment(spec: RunSpec, policy: SandboxPolicy) -> dict[str, str]:
    env = dict(os.environ) | {"VIBE_CACHE_DIR": str(spec.cache_dir)}
    if policy.compile_cache:
        env |= compile_environment(spec.cache_dir)
    return env


def _run_sandboxed(
    spec: RunSpec,
    policy: SandboxPolicy,
    report: ProtectionReport,
    phase: str,
    tokenizer: str | None,
    argv: list[str],
    limit_s: float,
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
    stop: threading.Event | None = None,
) -> ProcessEnd:
    paths = run_paths(spec, phase, tokenizer, policy)
    fresh_folder(paths.tmp_dir)
    if policy.compile_cache:
        link_inductor_tmp(spec.cache_dir, paths.tmp_dir)
    command = sandboxed(
        policy,
        report,
        paths,
        argv,
        name=f"{spec.run_id}-{phase}",
        environ=_environment(spec, policy),
    )
    try:
        return supervise(
            command,
            spec.workspace,
            on_stdout,
            on_stderr,
            limit_s,
            policy.kill_after_s,
            spec.run_dir,
            int(policy.run_dir_gb * 2**30),
            stop,
        )
    finally:
        command.close()


def resolve_tokenizer(spec: RunSpec, policy: SandboxPolicy, report: ProtectionReport) -> str | None:
    """The token cache a run reads: named in its overrides, else by its entry's `--describe`, else
    the one of the run it builds on (fusion's base run, from that run's config.json)."""
    named = spec.overrides.get("tokenizer") or describe(spec, policy, report).get("tokenizer")
    if isinstance(named, str) and named:
        return named
    for folder in referenced_runs(spec.run_dir, spec.workspace, spec.overrides.values()):
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and isinstance(config.get("tokenizer"), str):
            return config["tokenizer"]
    return None


def describe(spec: RunSpec, policy: SandboxPolicy, report: ProtectionReport) -> dict:
    """The entry's resolved config (`--describe` with the overrides), run in the sandbox too."""
    stdout: list[str] = []
    recorder = OutputRecorder(spec.run_id)
    argv = [sys.executable, str(spec.entry_path), "--describe", *spec.set_args()]
    end = _run_sandboxed(
        spec,
        policy,
        report,
        "describe",
        None,
        argv,
        DESCRIBE_LIMIT_S,
        stdout.append,
        recorder.log_line,
    )
    if end.stopped == "interrupt":
        raise KeyboardInterrupt
    if end.exit_code != 0:
        outcome, reason = training_outcome(end, recorder.log_text(), False, DESCRIBE_LIMIT_S)
        raise RunFailed(outcome, f"{spec.entry} --describe failed: {reason or recorder.tail(1)}")
    try:
        config = json.loads("".join(stdout))
    except json.JSONDecodeError as exc:
        raise RunFailed(
            "crash", f"{spec.entry} --describe did not print a JSON config ({exc})"
        ) from exc
    if not isinstance(config, dict):
        raise RunFailed(
            "crash", f"{spec.entry} --describe printed {type(config).__name__}, not a JSON object"
        )
    return config


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def train(
    spec: RunSpec,
    policy: SandboxPolicy,
    report: ProtectionReport,
    tokenizer: str | None,
    recorder: OutputRecorder,
) -> tuple[Outcome, str, int | None]:
    argv = [
        sys.executable,
        str(spec.entry_path),
        "--out",
        str(spec.run_dir),
        "--seed",
        str(spec.seed),
        "--budget",
        f"{spec.budget_s:g}",
        *spec.set_args(),
    ]
    limit = spec.budget_s + policy.grace_s
    stop = threading.Event()

    def on_stdout(line: str) -> None:
        recorder.stdout_line(line)
        if (
            spec.stop_after_steps is not None
            and (recorder.summary.steps or 0) >= spec.stop_after_steps
        ):
            stop.set()

    timer = threading.Timer(spec.stop_after_s, stop.set) if spec.stop_after_s is not None else None
    if timer:
        timer.daemon = True
        timer.start()
    if policy.compile_cache:
        drop_truncated(spec.cache_dir, older_than_s=LINKING_S)
    try:
        end = _run_sandboxed(
            spec,
            policy,
            report,
            "train",
            tokenizer,
            argv,
            limit,
            on_stdout,
            recorder.log_line,
            stop,
        )
    finally:
        if timer:
            timer.cancel()
        if policy.compile_cache:
            drop_truncated(spec.cache_dir)  # its process group is gone: what it cut off is left
    if end.stopped == "run_dir_cap":
        _empty(spec.run_dir)  # give the disk back; the record says what happened
    outcome, reason = training_outcome(end, recorder.log_text(), recorder.nan_seen, limit)
    return outcome, reason, end.exit_code


def evaluate(
    spec: RunSpec,
    policy: SandboxPolicy,
    report: ProtectionReport,
    split: Scored = "valid",
    out_dir: Path | None = None,
) -> tuple[Outcome, str, EvalResult | None]:
    """Measure the trained model: the scorer writes RUN_DIR/eval.json, which the model process
    (its run folder read-only to it) cannot touch. `split` = "test" scores the sealed test split
    instead, with no samples, into `out_dir`/test.json (outside the run folder, which later runs
    that build on it may read)."""
    out = (out_dir or spec.run_dir) / ("eval.json" if split == "valid" else "test.json")
    remove(out)  # whatever training left there (a file, a link, a folder) is not a result
    out.parent.mkdir(parents=True, exist_ok=True)
    measurement = Measurement(
        workspace=spec.workspace,
        entry=spec.entry_path,
        run_dir=spec.run_dir,
        cache_dir=spec.cache_dir,
        scratch=spec.run_dir / "tmp",
        out_dir=out.parent,
        references=referenced_runs(spec.run_dir, spec.workspace, spec.overrides.values()),
    )
    arguments = [
        "--entry",
        str(spec.entry_path),
        "--run-dir",
        str(spec.run_dir),
        "--cache-dir",
        str(spec.cache_dir),
        "--samples",
        str(spec.samples if split == "valid" else 0),
        "--split",
        split,
        "--out",
        str(out),
        "--timeout",
        f"{policy.eval_timeout_s:g}",
    ]
    recorder = OutputRecorder(spec.run_id)
    end = run_measurement(
        measurement,
        "vibe_research.lm.evaluate",
        arguments,
        policy,
        report,
        f"{spec.run_id}-evaluate",
        policy.eval_timeout_s,
        recorder.log_line,
        recorder.log_line,
        lambda line: recorder.log_line(f"[model] {line}"),
    )
    atomic.write_text(out.with_suffix(".log"), recorder.log_text())
    result = None
    if end.scorer.exit_code in (0, 3) and out.is_file():
        try:
            result = EvalResult.model_validate_json(out.read_text(encoding="utf-8"))
        except ValidationError as exc:
            return (
                "crash",
                f"evaluation wrote an unreadable {out.name}: {exc.errors()[0]['msg']}",
                None,
            )
    outcome, reason = evaluation_outcome(
        end.scorer,
        recorder.log_text(),
        result.reason if result and not result.ok else None,
        end.model,
    )
    return outcome, reason, result


def score_sealed(
    spec: RunSpec, policy: SandboxPolicy, report: ProtectionReport, out_dir: Path
) -> tuple[Outcome, str, EvalResult | None]:
    """The sealed test split scored for the trained model of `spec` (its experiment became the
    best), sandboxed like every evaluation; the result also goes to `out_dir`/test.json."""
    spec.run_dir.joinpath("tmp").mkdir(exist_ok=True)
    try:
        return evaluate(spec, policy, report, split="test", out_dir=out_dir)
    finally:
        shutil.rmtree(spec.run_dir / "tmp", ignore_errors=True)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _versions() -> tuple[str, str | None]:
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return platform.python_version(), torch_version


def record(
    spec: RunSpec,
    outcome: Outcome,
    reason: str,
    started: datetime,
    report: ProtectionReport,
    recorder: OutputRecorder,
    exit_code: int | None = None,
    evaluation: EvalResult | None = None,
    calibration: Calibration | None = None,
) -> RunResult:
    """Build the RunResult and write result.json, events.jsonl and train.log into the run folder."""
    ended = datetime.now(UTC)
    python_version, torch_version = _versions()
    result = RunResult(
        run_id=spec.run_id,
        spec=spec,
        outcome=outcome,
        reason=reason,
        exit_code=exit_code,
        log_tail=recorder.tail(),
        summary=recorder.summary,
        started=started,
        ended=ended,
        duration_s=(ended - started).total_seconds(),
        evaluation=evaluation,
        calibration=calibration,
        sandbox=report,
        lm_fingerprint=fingerprint(),
        python=python_version,
        torch=torch_version,
        hostname=socket.gethostname(),
    )
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(spec.run_dir / "events.jsonl", recorder.events_jsonl())
    atomic.write_text(spec.run_dir / "train.log", recorder.log_text())
    atomic.write_text(spec.run_dir / "result.json", result.model_dump_json(indent=2) + "\n")
    return result


CALIBRATE_LIMIT_S = 120.0  # interpreter, torch import and one second of benchmark, under load


def calibrate(spec: RunSpec, policy: SandboxPolicy, report: ProtectionReport) -> Calibration | None:
    """The machine's speed just before training (runs/calibrate.py), sandboxed like the training
    and with its thread settings; None when it could not be measured (said in the log)."""
    lines: list[str] = []
    recorder = OutputRecorder(spec.run_id)
    argv = [sys.executable, "-m", "vibe_research.runs.calibrate"]
    load = os.getloadavg()[0]
    end = _run_sandboxed(
        spec,
        policy,
        report,
        "calibrate",
        None,
        argv,
        CALIBRATE_LIMIT_S,
        lines.append,
        recorder.log_line,
    )
    if end.stopped == "interrupt":
        raise KeyboardInterrupt
    try:
        measured = Calibration.model_validate_json("".join(lines))
    except ValidationError:
        log.warning(
            "%s: no calibration (%s)", spec.run_id, recorder.tail(2) or f"exit {end.exit_code}"
        )
        return None
    return measured.model_copy(update={"load_start": load})


def run_one(
    spec: RunSpec, policy: SandboxPolicy, report: ProtectionReport, on_event: OnEvent | None = None
) -> RunResult:
    """Describe, train and evaluate `spec`; every ending, Ctrl-C included, gives a recorded result."""
    started = datetime.now(UTC)
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    recorder = OutputRecorder(spec.run_id, on_event)

    def status(phase: str) -> None:
        recorder.status(spec.run_dir, phase)

    try:
        status("describe")
        spec = spec.model_copy(
            update={"tokenizer": spec.tokenizer or resolve_tokenizer(spec, policy, report)}
        )
        calibration = None
        if spec.calibrate:
            status("calibrate")
            calibration = calibrate(spec, policy, report)
        status("train")
        outcome, reason, exit_code = train(spec, policy, report, spec.tokenizer, recorder)
        if calibration is not None:
            calibration = calibration.model_copy(update={"load_end": os.getloadavg()[0]})
        evaluation = None
        if outcome == "ok" and spec.evaluate and exit_code == 0:
            status("evaluate")
            outcome, failed_because, evaluation = evaluate(spec, policy, report)
            reason = failed_because or reason
        result = record(
            spec, outcome, reason, started, report, recorder, exit_code, evaluation, calibration
        )
    except RunFailed as failed:
        result = record(spec, failed.outcome, failed.reason, started, report, recorder)
    except KeyboardInterrupt:
        result = record(spec, "interrupted", "stopped by Ctrl-C", started, report, recorder)
    finally:
        shutil.rmtree(spec.run_dir / "tmp", ignore_errors=True)
    if on_event:
        on_event(
            spec.run_id,
            {
                "event": "status",
                "phase": "finished",
                "outcome": result.outcome,
                "reason": result.reason,
            },
        )
    return result
