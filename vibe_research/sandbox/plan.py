"""The concrete limits for one sandboxed process, built from the policy and the run's folders.

The runner builds a `LaunchPlan` and hands it, as JSON, to `vibe_research.sandbox.launch`, which
applies it to itself and execs the command.
"""

import logging
import os
import platform
import site
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from vibe_research.sandbox.landlock import Grant
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import ProtectionReport

log = logging.getLogger(__name__)

SYSTEM_EXEC = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
# What the C library, Python and torch read from /etc; the rest (shadow, ssh keys) stays closed.
ETC_FILES = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "gai.conf",
    "mime.types",
    "os-release",
    "timezone",
]
DEV_READ = ["/dev/zero", "/dev/random", "/dev/urandom"]
DEV_WRITE = ["/dev/null", "/dev/full"]
GPU_DEVICE_GLOBS = ["nvidia*", "nvidia-caps", "dri", "kfd"]


class LaunchPlan(BaseModel):
    """What the launcher applies to itself before exec. Stored JSON format: `version`."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    grants: list[tuple[str, Grant]]
    landlock: bool
    allow_tcp: bool
    network_namespace: bool
    block_unix_sockets: bool
    block_ipc: bool = False  # the model process: no System V / POSIX IPC, no keyrings
    rlimits: dict[str, int]
    cgroup_procs: list[str]
    drop_capabilities: bool


@dataclass
class RunPaths:
    """The folders one sandboxed process works with."""

    workspace: Path
    run_dir: Path
    tmp_dir: Path
    reads: list[Path] = field(default_factory=list)  # extra read grants: token caches, tokenizers
    denies: list[Path] = field(
        default_factory=list
    )  # extra denials: the validation cache in training
    writes: list[Path] = field(default_factory=list)  # extra write grants: the shared compile cache
    # The model process of an evaluation: the run folder read-only, and no write grant at all but
    # tmp_dir (not even sandbox.toml's write_paths: /dev/shm would outlive a session)
    confined: bool = False


def gpu_devices() -> list[Path]:
    dev = Path("/dev")
    return sorted({path for pattern in GPU_DEVICE_GLOBS for path in dev.glob(pattern)})


def uses_gpu(policy: SandboxPolicy) -> bool:
    """A GPU the run may use: a CUDA/ROCm device file, or Metal on Apple silicon."""
    apple_silicon = platform.system() == "Darwin" and platform.machine() == "arm64"
    return policy.gpu == "auto" and (bool(gpu_devices()) or apple_silicon)


def python_paths() -> list[Path]:
    """The interpreter, its standard library and site-packages, and this package's source."""
    import vibe_research

    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        *site.getsitepackages(),
    }
    paths.add(os.path.dirname(os.path.realpath(sys.executable)))
    paths.add(str(Path(vibe_research.__file__).resolve().parent))
    return sorted(Path(path).resolve() for path in paths)


def _related(grant: Path, denied: Path) -> bool:
    """True when granting `grant` would expose `denied` (it contains it, or lies inside it)."""
    return grant == denied or denied.is_relative_to(grant) or grant.is_relative_to(denied)


def safe_grants(grants: list[tuple[Path, Grant]], denied: list[Path]) -> list[tuple[Path, Grant]]:
    """Drop, loudly, every grant that would open a denied path (e.g. HOME, which holds ~/.ssh).

    Paths are compared as written and with links resolved: Landlock grants what a link points to.
    """
    denied = sorted({Path(f(path)) for path in denied for f in (os.path.abspath, os.path.realpath)})
    kept = []
    for path, grant in grants:
        forms = {Path(os.path.abspath(path)), Path(os.path.realpath(path))}
        clash = next((deny for deny in denied for form in forms if _related(form, deny)), None)
        if clash is None:
            kept.append((path, grant))
        else:
            log.warning(
                "sandbox: not granting %s access to %s: it would expose %s", grant, path, clash
            )
    return kept


def file_grants(policy: SandboxPolicy, paths: RunPaths, gpu: bool) -> list[tuple[Path, Grant]]:
    grants: list[tuple[Path, Grant]] = [(Path(p), "exec") for p in SYSTEM_EXEC]
    grants += [(path, "exec") for path in python_paths()]
    grants += [(Path("/etc") / name, "read") for name in ETC_FILES]
    grants += [(Path("/proc"), "read"), (Path("/sys"), "read")]
    grants += [(Path(p), "read") for p in DEV_READ] + [(Path(p), "device") for p in DEV_WRITE]
    grants += [(device, "device") for device in gpu_devices()] if gpu else []
    grants += [(paths.workspace / "experiments", "read")]
    grants += [(path, "read") for path in paths.reads]
    grants += [(Path(p).expanduser(), "read") for p in policy.read_paths]
    if paths.confined:
        grants += [(paths.run_dir, "read"), (paths.tmp_dir, "write")]
    else:
        grants += [(path, "write") for path in (paths.run_dir, paths.tmp_dir, *paths.writes)]
        grants += [(Path(p).expanduser(), "write") for p in policy.write_paths]
    home = Path(os.environ.get("HOME", "/root"))
    return safe_grants(grants, policy.denied_paths(paths.workspace, home) + paths.denies)


def rlimits(
    policy: SandboxPolicy, gpu: bool, physical_memory: int, task_base: int | None
) -> dict[str, int]:
    """Resource limits; no address-space or data cap with a GPU, where drivers map huge ranges.

    RLIMIT_NPROC counts every task of the user, so it is set `processes` above `task_base`, the
    user's count now (None: not set, where that count cannot be read).
    """
    limits = {"RLIMIT_CORE": 0, "RLIMIT_FSIZE": int(policy.file_size_gb * 2**30)}
    if task_base is not None:
        limits["RLIMIT_NPROC"] = task_base + policy.processes
    if not gpu:
        limits["RLIMIT_DATA"] = policy.memory_bytes(physical_memory)
    return limits


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def build_plan(
    policy: SandboxPolicy, report: ProtectionReport, paths: RunPaths, cgroup_procs: list[str]
) -> LaunchPlan:
    """Request exactly the protections `report` says this machine has."""
    from vibe_research.sandbox import seccomp
    from vibe_research.sandbox.limits import user_task_count

    gpu = uses_gpu(policy)
    linux, root = platform.system() == "Linux", os.geteuid() == 0
    task_base = None if not linux else 0 if root else user_task_count(os.geteuid())
    return LaunchPlan(
        grants=[(str(path), grant) for path, grant in file_grants(policy, paths, gpu)],
        landlock=report.active("landlock-files"),
        allow_tcp=policy.network,
        network_namespace=not policy.network and report.active("network-namespace"),
        block_unix_sockets=not policy.network and report.active("unix-sockets"),
        block_ipc=paths.confined and seccomp.supported(),
        rlimits=rlimits(policy, gpu, physical_memory(), task_base),
        cgroup_procs=cgroup_procs,
        drop_capabilities=linux and root,
    )
