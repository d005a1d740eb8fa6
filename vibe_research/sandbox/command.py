"""Wrap a command so that it runs inside the sandbox: the argv, the environment, the cgroups."""

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from vibe_research.sandbox.cgroups import RunCgroups, create_run_cgroups
from vibe_research.sandbox.plan import RunPaths, build_plan, file_grants, physical_memory, uses_gpu
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import ProtectionReport
from vibe_research.sandbox.seatbelt import seatbelt_profile

THREAD_VARIABLES = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]


@dataclass
class SandboxedCommand:
    """Start `argv` with `env` in a new session; call `close()` once it has ended."""

    argv: list[str]
    env: dict[str, str]
    cgroups: RunCgroups | None

    def kill_all(self) -> None:
        """Kill every process of the run still alive, even those that left its session."""
        if self.cgroups:
            self.cgroups.kill()

    def oom_kills(self) -> int:
        return self.cgroups.oom_kills() if self.cgroups else 0

    def close(self) -> None:
        if self.cgroups:
            self.cgroups.remove()


def fresh_folder(folder: Path) -> None:
    """Replace whatever is at `folder` (a link a run left there, a file, an old folder) by an empty folder.

    A run could turn its private temp into a link to a secret folder; the next phase would then
    be granted that folder. Each phase gets a new, real one instead.
    """
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def run_environment(
    policy: SandboxPolicy, paths: RunPaths, environ: dict[str, str]
) -> dict[str, str]:
    """The allow-listed environment, with HOME and TMPDIR moved into the run's private temp."""
    home = paths.tmp_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = policy.run_environment(environ)
    env |= {
        "HOME": str(home),
        "TMPDIR": str(paths.tmp_dir),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.setdefault("PATH", os.defpath)
    if policy.threads:
        env |= {name: str(policy.threads) for name in THREAD_VARIABLES}
    return env


def sandboxed(
    policy: SandboxPolicy,
    report: ProtectionReport,
    paths: RunPaths,
    argv: list[str],
    name: str,
    environ: dict[str, str] | None = None,
) -> SandboxedCommand:
    """`argv` wrapped in the launcher (and sandbox-exec on macOS) under `policy`.

    `name` labels the run's cgroups; it must be unique among live runs.
    """
    env = run_environment(policy, paths, dict(os.environ) if environ is None else environ)
    if policy.mode == "none":
        return SandboxedCommand(argv, env, None)
    cgroups = None
    if report.active("memory-cgroup") or report.active("task-limit"):
        cgroups = create_run_cgroups(name, policy.memory_bytes(physical_memory()), policy.processes)
    plan = build_plan(policy, report, paths, cgroups.procs_files if cgroups else [])
    wrapped = [
        sys.executable,
        "-m",
        "vibe_research.sandbox.launch",
        plan.model_dump_json(),
        "--",
        *argv,
    ]
    if platform.system() == "Darwin" and report.active("seatbelt"):
        gpu = uses_gpu(policy)
        home = Path(os.environ.get("HOME", "/"))
        profile = seatbelt_profile(
            file_grants(policy, paths, gpu),
            policy.denied_paths(paths.workspace, home) + paths.denies,
            policy.network,
            posix_ipc=not paths.confined,
        )
        wrapped = ["sandbox-exec", "-p", profile, *wrapped]
    return SandboxedCommand(wrapped, env, cgroups)
