"""Control groups for one run, where this process may create them: a memory cap and a task cap
over the whole process tree, an OOM count, and a kill that reaches processes that left the group.

cgroup v2 (memory.max, pids.max, cgroup.kill) is used where its controllers are enabled; the v1
memory and pids hierarchies otherwise. Anything not writable is simply not used: the report says so.
"""

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "vibe-"
STALE_S = 600  # a run joins its cgroups within seconds; an older empty one lost its runner


def _mounts() -> dict[str, Path]:
    """'v2', 'pids', 'memory' -> mount point, from /proc/self/mountinfo."""
    found: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        fstype, _, options = ([*tail.split(" "), "", "", ""])[:3]
        point = Path(fields.split(" ")[4])
        if fstype == "cgroup2":
            found.setdefault("v2", point)
        elif fstype == "cgroup":
            for controller in ("pids", "memory"):
                if controller in options.split(","):
                    found.setdefault(controller, point)
    return found


def _own_paths() -> dict[str, str]:
    """'v2', 'pids', 'memory' -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            paths["v2"] = path
        for controller in ("pids", "memory"):
            if controller in controllers.split(","):
                paths[controller] = path
    return paths


def sweep_stale(parent: Path, older_than_s: float = STALE_S) -> None:
    """Remove run cgroups a killed runner left behind. rmdir only succeeds on an empty cgroup,
    so a live run's is never touched."""
    now = time.time()
    for folder in parent.glob(f"{PREFIX}*"):
        try:
            if now - folder.stat().st_mtime > older_than_s:
                folder.rmdir()
        except OSError:
            continue  # in use, or already gone


def _make(parent: Path, name: str) -> Path | None:
    folder = parent / name
    try:
        folder.mkdir()
    except OSError as exc:
        log.debug("cannot create cgroup %s: %s", folder, exc)
        return None
    return folder


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
    except OSError as exc:
        log.debug("cannot write %s: %s", path, exc)
        return False
    return True


@dataclass
class RunCgroups:
    """The cgroup folders created for one run; `limits` names what each cap is enforced by."""

    folders: list[Path] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)

    @property
    def procs_files(self) -> list[str]:
        return [str(folder / "cgroup.procs") for folder in self.folders]

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the memory cap."""
        total = 0
        for folder in self.folders:
            for name in ("memory.events", "memory.oom_control"):
                if (folder / name).is_file():
                    for line in (folder / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        total += int(value) if key == "oom_kill" else 0
        return total

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            try:
                found |= {int(pid) for pid in Path(procs).read_text().split()}
            except OSError:
                continue
        return found

    def kill(self, timeout_s: float = 5.0) -> None:
        """SIGKILL everything in the run's cgroups, including processes that called setsid."""
        for folder in self.folders:
            if (folder / "cgroup.kill").exists():
                _write(folder / "cgroup.kill", "1")
        deadline = time.monotonic() + timeout_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill()
        for folder in self.folders:
            try:
                folder.rmdir()
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", folder, exc)


def create_run_cgroups(name: str, memory_bytes: int | None, tasks: int) -> RunCgroups:
    """Create cgroups `vibe-<name>` beside this process's own, with the caps that can be set."""
    mounts, own = _mounts(), _own_paths()
    groups = RunCgroups()

    def child(kind: str) -> Path | None:
        if kind not in mounts or kind not in own:
            return None
        parent = mounts[kind] / own[kind].lstrip("/")
        sweep_stale(parent)
        return _make(parent, PREFIX + name)

    if "v2" in mounts and "v2" in own:
        parent = mounts["v2"] / own["v2"].lstrip("/")
        enabled = (
            (parent / "cgroup.subtree_control").read_text().split()
            if (parent / "cgroup.subtree_control").is_file()
            else []
        )
        if {"memory", "pids"} & set(enabled) and (folder := child("v2")):
            groups.folders.append(folder)
            if (
                "memory" in enabled
                and memory_bytes
                and _write(folder / "memory.max", str(memory_bytes))
            ):
                _write(folder / "memory.swap.max", "0")
                groups.limits["memory"] = "cgroup v2 memory.max"
            if "pids" in enabled and _write(folder / "pids.max", str(tasks)):
                groups.limits["tasks"] = "cgroup v2 pids.max"
    if "tasks" not in groups.limits and (folder := child("pids")):
        groups.folders.append(folder)
        if _write(folder / "pids.max", str(tasks)):
            groups.limits["tasks"] = "cgroup v1 pids.max"
    if "memory" not in groups.limits and memory_bytes and (folder := child("memory")):
        groups.folders.append(folder)
        if _write(folder / "memory.limit_in_bytes", str(memory_bytes)):
            groups.limits["memory"] = "cgroup v1 memory.limit_in_bytes"
    return groups
