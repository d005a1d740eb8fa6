"""Which protections this machine can enforce, said plainly; stored in every run record."""

import functools
import logging
import os
import platform
import shutil
import subprocess
import sys

from pydantic import BaseModel, ConfigDict

from vibe_research.sandbox import landlock, seccomp
from vibe_research.sandbox.policy import SandboxPolicy

log = logging.getLogger(__name__)


class Protection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    active: bool
    detail: str


class ProtectionReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: str
    platform: str
    protections: list[Protection]

    def active(self, name: str) -> bool:
        return any(item.name == name and item.active for item in self.protections)

    def missing(self) -> list[Protection]:
        return [item for item in self.protections if not item.active]

    def warnings(self) -> list[str]:
        """One line per protection that is not in force, to be shown loudly."""
        return [f"sandbox: {item.name} is OFF: {item.detail}" for item in self.missing()]


@functools.cache
def _network_namespace_works() -> tuple[bool, str]:
    code = "from vibe_research.sandbox.namespaces import enter_network_namespace as e; e()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode == 0:
        return True, "a new network namespace: no interface is up, nothing is reachable"
    last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
    return (
        False,
        f"cannot create a network namespace ({last}); Landlock TCP rules are the only network barrier",
    )


@functools.cache
def _cgroup_limits() -> dict[str, str]:
    from vibe_research.sandbox.cgroups import create_run_cgroups

    groups = create_run_cgroups(f"probe-{os.getpid()}", 1 << 30, 64)
    groups.remove()
    return groups.limits


def _linux(policy: SandboxPolicy) -> list[Protection]:
    abi = landlock.abi_version()
    netns_ok, netns_detail = _network_namespace_works()
    cgroups = _cgroup_limits()
    root = os.geteuid() == 0
    items = [
        Protection(
            name="landlock-files",
            active=abi >= 1,
            detail=f"Landlock ABI {abi}: reads and writes limited to an allow-list"
            if abi
            else "Landlock is not enabled in this kernel (needs 5.13+ with lsm=landlock): files are NOT confined",
        ),
        Protection(
            name="landlock-tcp",
            active=abi >= 4,
            detail="TCP bind and connect denied"
            if abi >= 4
            else f"Landlock ABI {abi} < 4 cannot restrict TCP",
        ),
        Protection(
            name="landlock-scope",
            active=abi >= 6,
            detail="signals and abstract unix sockets confined to the run"
            if abi >= 6
            else f"Landlock ABI {abi} < 6: signals to other processes of this user are not blocked",
        ),
        Protection(name="network-namespace", active=netns_ok, detail=netns_detail),
        Protection(
            name="unix-sockets",
            active=seccomp.supported(),
            detail="seccomp refuses new unix sockets (docker.sock, SSH agents); socketpair() still works"
            if seccomp.supported()
            else f"no seccomp filter for {platform.machine()}: unix sockets bound to paths are reachable",
        ),
        Protection(
            name="rlimits",
            active=True,
            detail="file size, core dumps off, and a per-process data cap when no GPU is used",
        ),
        Protection(
            name="task-limit",
            active=("tasks" in cgroups) or not root,
            detail=cgroups.get("tasks")
            or (
                "RLIMIT_NPROC"
                if not root
                else "root ignores RLIMIT_NPROC and no pids cgroup is writable: a fork bomb is NOT capped"
            ),
        ),
        Protection(
            name="memory-cgroup",
            active="memory" in cgroups,
            detail=cgroups.get("memory")
            or "no writable memory cgroup: only the per-process data cap limits memory",
        ),
        Protection(
            name="capabilities",
            active=True,
            detail="all capabilities dropped (root)" if root else "not root: none to drop",
        ),
        Protection(
            name="process-group",
            active=True,
            detail="own session; killed as a group at budget + grace",
        ),
    ]
    if not policy.network:
        return items
    return [
        item
        for item in items
        if item.name not in {"landlock-tcp", "network-namespace", "unix-sockets"}
    ] + [Protection(name="network", active=False, detail="sandbox.toml allows the network")]


def _macos() -> list[Protection]:
    found = shutil.which("sandbox-exec")
    return [
        Protection(
            name="seatbelt",
            active=found is not None,
            detail="sandbox-exec with a generated profile (files, network)"
            if found
            else "sandbox-exec not found",
        ),
        Protection(name="rlimits", active=True, detail="file size, core dumps off"),
        Protection(
            name="process-group",
            active=True,
            detail="own session; killed as a group at budget + grace",
        ),
    ]


def probe(policy: SandboxPolicy | None = None) -> ProtectionReport:
    """What a run would get here under `policy` (default: the default sandbox.toml)."""
    policy = policy or SandboxPolicy()
    system = platform.system()
    if policy.mode == "none":
        items = [
            Protection(
                name="sandbox",
                active=False,
                detail='sandbox.mode = "none": the run has your full access',
            )
        ]
    elif system == "Linux":
        items = _linux(policy)
    elif system == "Darwin":
        items = _macos()
    else:
        items = [Protection(name="sandbox", active=False, detail=f"no sandbox for {system}")]
    report = ProtectionReport(mode=policy.mode, platform=system, protections=items)
    for line in report.warnings():
        log.warning(line)
    return report
