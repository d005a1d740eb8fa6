"""Naming how a process ended: pure functions from its exit, its stop reason and its log."""

import re
import signal

from vibe_research.runs.process import ProcessEnd
from vibe_research.runs.result import Outcome
from vibe_research.sandbox.launch import SETUP_FAILED, SETUP_MARKER

OOM = re.compile(
    r"MemoryError|Cannot allocate memory|can't allocate memory|out of memory|DefaultCPUAllocator",
    re.IGNORECASE,
)
DENIED = re.compile(
    r"PermissionError|Permission denied|Operation not permitted|Network is unreachable|Read-only file system"
)
FILE_TOO_LARGE = re.compile(
    r"File too large"
)  # EFBIG: Python ignores SIGXFSZ, so writes fail instead
TASK_LIMIT = re.compile(r"BlockingIOError|Resource temporarily unavailable|can't start new thread")


def _last_match(pattern: re.Pattern, text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if pattern.search(line)]
    return lines[-1] if lines else None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _common(end: ProcessEnd, log: str, what: str) -> tuple[Outcome, str] | None:
    """Endings that mean the same for training and evaluation."""
    if end.stopped == "interrupt":
        return "interrupted", f"{what} stopped by Ctrl-C"
    if end.stopped == "run_dir_cap":
        return (
            "sandbox_violation",
            f"{what} filled the run folder past its cap (sandbox.toml run_dir_gb); killed",
        )
    if end.exit_code == -signal.SIGXFSZ or (
        end.exit_code != 0 and _last_match(FILE_TOO_LARGE, log)
    ):
        return (
            "sandbox_violation",
            f"{what} wrote a file past the size cap (sandbox.toml file_size_gb)",
        )
    if end.exit_code == SETUP_FAILED and (
        line := _last_match(re.compile(re.escape(SETUP_MARKER)), log)
    ):
        return "crash", line
    if end.oom_kills or (end.exit_code != 0 and (line := _last_match(OOM, log))):
        return "out_of_memory", f"{what} ran out of memory: " + (
            f"the kernel killed {end.oom_kills} process(es) at the memory cap"
            if end.oom_kills
            else line
        )
    return None


def _refused(end: ProcessEnd, log: str, what: str) -> tuple[Outcome, str] | None:
    if end.exit_code == 0:
        return None
    if line := _last_match(DENIED, log):
        return "sandbox_violation", f"{what} was refused by the sandbox: {line}"
    if line := _last_match(TASK_LIMIT, log):
        return "sandbox_violation", f"{what} hit the task limit (sandbox.toml processes): {line}"
    return None


def training_outcome(
    end: ProcessEnd, log: str, nan_seen: bool, limit_s: float
) -> tuple[Outcome, str]:
    if found := _common(end, log, "training"):
        return found
    if end.stopped == "budget":
        how = "SIGTERM, then SIGKILL" if end.exit_code == -signal.SIGKILL else "SIGTERM"
        return (
            "timeout",
            f"training was still running at budget + grace ({limit_s:g} s); stopped with {how}",
        )
    if end.stopped == "requested" and end.exit_code in (-signal.SIGTERM, -signal.SIGKILL):
        return (
            "ok",
            "stopped early as asked; it ended on the signal without saving (no SIGTERM handling), so no model to check",
        )
    if end.stopped == "requested" and end.exit_code == 0:
        return "ok", "stopped early as asked, and saved"
    if found := _refused(end, log, "training"):
        return found
    if nan_seen:
        return "nan", "the training loss became NaN or infinite"
    if end.exit_code != 0:
        return "crash", f"training exited with {end.exit_code}: {_last_line(log)}"
    if end.survivors:
        return (
            "sandbox_violation",
            f"training left {end.survivors} process(es) running after it ended; killed",
        )
    return "ok", ""


def evaluation_outcome(
    end: ProcessEnd, log: str, contract_reason: str | None, model: ProcessEnd | None = None
) -> tuple[Outcome, str]:
    """`end`: the scorer's; `contract_reason`: its reason when it rejected the model (exit 3);
    `model`: the model process's, whose memory cgroup may have killed a session."""
    if model is not None and model.oom_kills and contract_reason is not None:
        return (
            "out_of_memory",
            f"the model ran out of memory: the kernel killed {model.oom_kills} process(es) at the "
            f"memory cap ({contract_reason})",
        )
    if found := _common(end, log, "evaluation"):
        return found
    if end.stopped == "budget":
        return "timeout", "evaluation ran past sandbox.toml eval_timeout_s"
    if contract_reason is not None:
        if DENIED.search(contract_reason):
            return (
                "sandbox_violation",
                f"the model's code was refused by the sandbox: {contract_reason}",
            )
        return "bad_model", contract_reason
    if found := _refused(end, log, "evaluation"):
        return found
    if end.exit_code != 0:
        return "crash", f"evaluation exited with {end.exit_code}: {_last_line(log)}"
    return "ok", ""
