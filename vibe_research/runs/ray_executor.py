"""Runs on a Ray cluster: each RunSpec is a Ray task that calls `run_one`, in the sandbox, on a worker.

The driver ships the workspace's experiments/ files (the proposal's exact code) through the object
store; the worker writes them into a scratch workspace, reads the token cache at the same path as
the driver (a shared filesystem, or `[train.ray] cache_dir`), runs the run, and sends the run
folder back. Events travel through a `ray.util.queue.Queue` pinned to the driver's node, which
the driver drains while it waits. A task whose worker or node dies is recorded in
RUN_DIR/attempt-N/ and submitted once more, away from the node that died. Ctrl-C asks every task
to stop (KeyboardInterrupt in the worker, which stops the training as the local runner does),
then force-cancels whatever has not returned.

Without `[train.ray] address` the executor starts a local Ray of its own for the session: every
server on 127.0.0.1, token auth on with a token made for this process. A run folder comes back
without following links: a symbolic link, a hard-linked file or anything but a plain file in it
is refused (named in the record), never read, so a run cannot send back a file it points at.

`import ray` happens inside functions only, so the CLI starts without it.
"""

import errno
import json
import logging
import os
import secrets
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from vibe_research.lm import atomic
from vibe_research.lm.errors import UserError
from vibe_research.lm.evaluate import EvalResult
from vibe_research.runs.calibrate import Calibration
from vibe_research.runs.events import LIVE_TRACE, OnEvent, OutputRecorder
from vibe_research.runs.executor import not_started
from vibe_research.runs.result import Outcome, RunResult
from vibe_research.runs.runner import record, resolve_tokenizer, run_one, score_sealed
from vibe_research.runs.settings import RaySettings
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import ProtectionReport, probe

log = logging.getLogger(__name__)

CODE_FOLDER = "experiments"
MAX_CODE_BYTES = 64 * 2**20  # experiments/ larger than this is not code; refuse to ship it
POLL_S = 0.2  # how often the driver drains the event queue
FLUSH_S = 0.25  # how often a worker sends its buffered events
CANCEL_WAIT_S = 10.0  # after Ctrl-C, on top of sandbox.toml kill_after_s, before force-cancelling
ATTEMPTS = 2  # a run whose worker dies is tried once more
CONNECT_TIMEOUT_S = 5.0  # for the TCP check of the Ray address before ray.init
# what comes back from a run folder over return_mb; the live trace too: about 25 kB a minute, capped
RECORD_FILES = (
    "result.json",
    "events.jsonl",
    "train.log",
    "eval.log",
    "eval.json",
    "config.json",
    LIVE_TRACE,
)
LOOPBACK = "127.0.0.1"


class Shipped(BaseModel):
    """What a worker sends back: the RunResult as it saw it (its own paths) and the run folder."""

    model_config = ConfigDict(extra="forbid")
    result_json: str
    files: dict[str, bytes]
    left_on_worker: list[
        str
    ] = []  # files kept on the worker (run folder over `return_mb`), by their path there
    refused: list[str] = []  # entries of the run folder not sent: "path (why)"


@dataclass
class Attempt:
    index: int  # of the spec in the list
    number: int  # 1, then 2 for the retry
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    node_id: str | None = None
    host: str | None = None
    recorder: OutputRecorder | None = None

    def where(self) -> str:
        return (
            f"{self.host} (node {self.node_id[:12]})" if self.node_id else "a worker not yet known"
        )


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UserError(
            'executor = "ray" needs Ray: pip install \'vibe-research[cluster]\' (or set [train] executor = "local")'
        ) from exc
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast on a `host:port` or `ray://host:port` nobody listens on; ray.init would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(
            f"nothing answers at the Ray address {address} ({exc.strerror or exc}); start the head with "
            "`ray start --head` or fix [train.ray] address"
        ) from exc


@contextmanager
def ray_session(settings: RaySettings) -> Iterator[Any]:
    """Ray, connected to the cluster at `settings.address`, or to a local Ray started for this
    session (see `_local_ray`) and shut down after it. A Ray the caller initialised is used as is."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    if settings.address:
        _check_reachable(settings.address)
    with _local_ray() if settings.address is None else nullcontext():
        try:
            ray.init(
                address=settings.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                **({} if settings.address else {"_node_ip_address": LOOPBACK}),
            )
        except ConnectionError as exc:
            raise UserError(
                f"cannot reach the Ray cluster at {settings.address or 'a new local Ray'} ({exc}); start one with "
                "`ray start --head` or fix [train.ray] address"
            ) from exc
        log.info(
            "connected to %s: %s",
            settings.address or f"a local Ray on {LOOPBACK} with token auth",
            ray.cluster_resources(),
        )
        try:
            yield ray
        finally:
            ray.shutdown()


@contextmanager
def _local_ray() -> Iterator[None]:
    """The environment for a local Ray of our own: every server bound to 127.0.0.1, token auth on.

    On Linux Ray turns a node address of 127.0.0.1 into the machine's routable one (multi-node
    clusters need that) and then listens on every interface; with ray_constants.ENABLE_RAY_CLUSTER
    off, as on macOS and Windows, it keeps 127.0.0.1 and binds there. With RAY_AUTH_MODE unset,
    ray.init turns token auth on for a new local Ray (Ray 2.59 and later) and takes the token from
    RAY_AUTH_TOKEN, so nothing is written to ~/.ray. A RAY_AUTH_MODE=disabled meant for a cluster
    does not switch it off here. Sandboxed runs never see the token (their environment drops *_TOKEN).
    """
    from ray._private import ray_constants

    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    cluster = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.pop("RAY_AUTH_MODE", None)
    os.environ["RAY_AUTH_TOKEN"] = _local_token()
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@cache
def _local_token() -> str:
    """One token per process: Ray's token loader keeps the first token it reads."""
    return secrets.token_hex(32)


def cluster_check(settings: RaySettings) -> dict:
    """The cluster's nodes and resources, and how many runs fit at once, for `vibe-research doctor`."""
    with ray_session(settings) as ray:
        nodes = [
            {
                "host": node["NodeManagerHostname"],
                "address": node["NodeManagerAddress"],
                "node_id": node["NodeID"],
                "alive": node["Alive"],
                "head": "node:__internal_head__" in node["Resources"],
                "cpus": node["Resources"].get("CPU", 0.0),
                "gpus": node["Resources"].get("GPU", 0.0),
                "memory_gb": round(node["Resources"].get("memory", 0.0) / 2**30, 1),
            }
            for node in ray.nodes()
        ]
        per_run = _resources(settings)
        # a run cannot span nodes: count the runs each live node holds
        runs_at_once = sum(
            min(
                int(node["Resources"].get(name, 0.0) // amount)
                for name, amount in per_run.items()
                if amount > 0
            )
            for node in ray.nodes()
            if node["Alive"]
        )
        return {
            "address": settings.address or "local",
            "ray": ray.__version__,
            "nodes": nodes,
            "total": ray.cluster_resources(),
            "available": ray.available_resources(),
            "per_run": per_run,
            "runs_at_once": runs_at_once,
        }


def _resources(settings: RaySettings) -> dict[str, float]:
    """Ray resource names and amounts one run asks for (memory in bytes)."""
    wanted = {"CPU": settings.cpus_per_run, "GPU": settings.gpus_per_run}
    if settings.memory_gb_per_run:
        wanted["memory"] = settings.memory_gb_per_run * 2**30
    return wanted


def _fits(node: dict, wanted: dict[str, float]) -> bool:
    """Whether a node (an entry of `ray.nodes()`) is alive and large enough for one run."""
    return node["Alive"] and all(
        node["Resources"].get(name, 0.0) >= amount for name, amount in wanted.items()
    )


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def bundle_code(workspace: Path) -> dict[str, bytes]:
    """Every file under the workspace's experiments/ (no bytecode), keyed by its relative path."""
    root = workspace / CODE_FOLDER
    if not root.is_dir():
        raise UserError(
            f"{root} does not exist: Ray runs ship the workspace's {CODE_FOLDER}/ folder to the workers"
        )
    files = {
        path.relative_to(workspace).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    size = sum(len(data) for data in files.values())
    if size > MAX_CODE_BYTES:
        raise UserError(
            f"{root} holds {size / 2**20:.0f} MiB; Ray runs ship it to every worker, so keep data and checkpoints out of it (limit {MAX_CODE_BYTES // 2**20} MiB)"
        )
    return files


def _write_files(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        target = (root / relative).resolve()
        if not target.is_relative_to(root.resolve()):
            raise ValueError(f"refusing to write {relative!r} outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


class EventForwarder:
    """Buffers a worker's events and sends them to the driver's queue in batches, from a thread,
    so the reader threads of the training process never wait on the network."""

    def __init__(self, queue: Any, attempt: int) -> None:
        self.queue, self.attempt = queue, attempt
        self._buffer: list[tuple[str, int, dict]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vibe-ray-events", daemon=True)
        self._thread.start()

    def __call__(self, run_id: str, event: dict) -> None:
        with self._lock:
            self._buffer.append((run_id, self.attempt, event))

    def _flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            self.queue.put_nowait_batch(batch)

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self._flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._flush()


def _collect(run_dir: Path, return_bytes: int) -> tuple[dict[str, bytes], list[str], list[str]]:
    """The run folder's plain files, what stays on the worker when they exceed `return_bytes`
    (all but the records), and what is refused ("path (why)").

    The walk opens every folder and file relative to its parent without following links, so a
    link the run planted, or swapped in while this reads, never brings back what it points at.
    """
    files: dict[str, bytes] = {}
    sizes: dict[str, int] = {}
    refused: list[str] = []
    for folder, dirs, names, dir_fd in os.fwalk(run_dir, follow_symlinks=False):
        relative = Path(folder).relative_to(run_dir)
        for name in dirs:
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                refused.append(f"{(relative / name).as_posix()} (a symbolic link)")
        for name in names:
            path = (relative / name).as_posix()
            room = None if path in RECORD_FILES else return_bytes - sum(sizes.values())
            size, data, why = _read_plain(name, dir_fd, room)
            if why:
                refused.append(f"{path} ({why})")
                continue
            sizes[path] = size
            if data is not None:
                files[path] = data
    refused.sort()
    if sum(sizes.values()) <= return_bytes:
        return files, [], refused
    kept = {path: data for path, data in files.items() if path in RECORD_FILES}
    return kept, [str(run_dir / path) for path in sizes if path not in kept], refused


def _read_plain(name: str, dir_fd: int, room: int | None) -> tuple[int, bytes | None, str]:
    """(size, its bytes if it fits `room` (None: any size), "") for a plain file in `dir_fd`,
    else (0, None, why it is refused)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return 0, None, "a symbolic link"
        return 0, None, f"unreadable: {exc.strerror}"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0, None, "not a plain file"
        if info.st_nlink > 1:
            # another name for a file that may live outside the run folder
            return 0, None, "a hard link"
        fits = room is None or info.st_size <= room
        return info.st_size, handle.read() if fits else None, ""


def run_on_worker(
    spec_json: str,
    policy_json: str,
    code: dict[str, bytes],
    queue: Any,
    attempt: int,
    cache_dir: str | None,
    return_bytes: int,
) -> Shipped:
    """The body of the Ray task: rebuild the workspace in scratch space, run, send the folder back."""
    ray = _ray()
    spec, policy = (
        RunSpec.model_validate_json(spec_json),
        SandboxPolicy.model_validate_json(policy_json),
    )
    forward = EventForwarder(queue, attempt)
    forward(
        spec.run_id,
        {
            "event": "status",
            "phase": "placed",
            "attempt": attempt,
            "host": socket.gethostname(),
            "node_id": ray.get_runtime_context().get_node_id(),
        },
    )
    scratch = Path(tempfile.mkdtemp(prefix=f"vibe-ray-{spec.run_id}-{attempt}-"))
    left: list[str] = []
    try:
        _write_files(scratch / "workspace", code)
        local = spec.model_copy(
            update={
                "workspace": scratch / "workspace",
                "run_dir": scratch / "run",
                "cache_dir": Path(cache_dir) if cache_dir else spec.cache_dir,
            }
        )
        report = probe(policy)
        if not local.cache_dir.is_dir():
            reason = (
                f"the token cache {local.cache_dir} is not on Ray worker {socket.gethostname()}: workers read it at the "
                "driver's path (a shared filesystem) or at [train.ray] cache_dir"
            )
            result = record(
                local, "crash", reason, datetime.now(UTC), report, OutputRecorder(spec.run_id)
            )
            forward(
                spec.run_id,
                {
                    "event": "status",
                    "phase": "finished",
                    "outcome": result.outcome,
                    "reason": result.reason,
                },
            )
        else:
            result = run_one(local, policy, report, forward)
        files, left, refused = _collect(local.run_dir, return_bytes)
        return Shipped(
            result_json=result.model_dump_json(),
            files=files,
            left_on_worker=left,
            refused=refused,
        )
    finally:
        forward.close()
        # files too large to send back stay where the record says they are
        shutil.rmtree(scratch / "workspace" if left else scratch, ignore_errors=True)


def land(spec: RunSpec, shipped: Shipped) -> RunResult:
    """Write a worker's run folder into `spec.run_dir` and give its result the driver's paths."""
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    _write_files(spec.run_dir, shipped.files)
    remote = RunResult.model_validate_json(shipped.result_json)
    local_spec = spec.model_copy(update={"tokenizer": remote.spec.tokenizer})
    evaluation = remote.evaluation
    if evaluation is not None:
        evaluation = evaluation.model_copy(
            update={"entry": str(local_spec.entry_path), "run_dir": str(spec.run_dir)}
        )
        atomic.write_text(spec.run_dir / "eval.json", evaluation.model_dump_json(indent=2) + "\n")
    log_tail = remote.log_tail
    notes = []
    if shipped.refused:
        notes.append(
            f"not sent back from Ray worker {remote.hostname}, only plain files are: "
            + ", ".join(shipped.refused)
        )
    if shipped.left_on_worker:
        notes.append(
            f"left on Ray worker {remote.hostname} (run folder over [train.ray] return_mb): "
            + ", ".join(shipped.left_on_worker)
        )
    for note in notes:
        log.warning("%s: %s", spec.run_id, note)
        log_tail = f"{log_tail}\n{note}".strip()
    result = remote.model_copy(
        update={"spec": local_spec, "evaluation": evaluation, "log_tail": log_tail}
    )
    atomic.write_text(spec.run_dir / "result.json", result.model_dump_json(indent=2) + "\n")
    return result


class RayExecutor:
    """Every run a Ray task, all submitted at once; the cluster decides how many run side by side."""

    def __init__(
        self,
        policy: SandboxPolicy,
        ray_settings: RaySettings,
        report: ProtectionReport | None = None,
    ) -> None:
        self.policy = policy
        self.settings = ray_settings
        # This machine's protections, for the records the driver writes itself (not started, worker lost);
        # a run that reached a worker carries the worker's own report.
        self.report = report or probe(policy)

    def tokenizer_of(self, spec: RunSpec) -> str | None:
        """Asked of the entry here, in the local sandbox: the driver builds the token caches."""
        return resolve_tokenizer(spec, self.policy, self.report)

    def score_sealed(self, spec: RunSpec, out_dir: Path) -> tuple[Outcome, str, EvalResult | None]:
        """Here, on the driver: the run folder has come back, and the test split stays here."""
        return score_sealed(spec, self.policy, self.report, out_dir)

    def calibrate(self, spec: RunSpec) -> Calibration | None:
        """None: a run lands on whichever node has room, so no one machine's speed says
        beforehand what the runs will see; the drift guard compares the calibrations the runs
        themselves took (research/loop/drift.py)."""
        return None

    def execute(self, specs: list[RunSpec], on_event: OnEvent | None = None) -> list[RunResult]:
        if not specs:
            return []
        if outside := sorted(
            {spec.entry for spec in specs if Path(spec.entry).parts[0] != CODE_FOLDER}
        ):
            raise UserError(
                f"Ray runs ship the workspace's {CODE_FOLDER}/ folder, and {', '.join(outside)} is outside it; move the entry into {CODE_FOLDER}/"
            )
        codes = {
            workspace: bundle_code(workspace) for workspace in {spec.workspace for spec in specs}
        }
        with ray_session(self.settings) as ray:
            return _Session(ray, self, specs, codes, on_event).run()


class _Session:
    """One `execute` call: submit, stream events, land results, retry the lost, cancel on Ctrl-C."""

    def __init__(
        self,
        ray: Any,
        executor: RayExecutor,
        specs: list[RunSpec],
        codes: dict[Path, dict[str, bytes]],
        on_event: OnEvent | None,
    ) -> None:
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.executor, self.specs, self.on_event = ray, executor, specs, on_event
        self.results: list[RunResult | None] = [None] * len(specs)
        self.pending: dict[Any, Attempt] = {}
        self.attempts: dict[tuple[str, int], Attempt] = {}
        # Pinned to the driver's node: a queue on a worker node would die with it.
        here = ray.get_runtime_context().get_node_id()
        self.queue = Queue(
            actor_options={
                "num_cpus": 0,
                "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=False),
            }
        )
        self.code_refs = {workspace: ray.put(files) for workspace, files in codes.items()}
        self.policy_json = executor.policy.model_dump_json()
        settings = executor.settings
        memory = (
            {"memory": int(settings.memory_gb_per_run * 2**30)}
            if settings.memory_gb_per_run
            else {}
        )
        # Ray's own retries are off: a lost attempt is recorded and retried here, once.
        self.task = ray.remote(run_on_worker)
        self.task_options = {
            "num_cpus": settings.cpus_per_run,
            "num_gpus": settings.gpus_per_run,
            **memory,
            "max_retries": 0,
            "retry_exceptions": False,
            "name": "vibe-run",
        }

    def run(self) -> list[RunResult]:
        try:
            self._warn_if_nothing_fits()
            for index in range(len(self.specs)):
                self._submit(Attempt(index, 1))
            while self.pending:
                ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=POLL_S)
                self._drain()
                for ref in ready:
                    self._settle(ref, stopping=False)
        except KeyboardInterrupt:
            self._cancel()
        finally:
            # only after an error of our own: nothing of this session may stay on the cluster
            for ref in self.pending:
                self.ray.cancel(ref, force=True)
            self._drain()
            self.queue.shutdown()
        return [result for result in self.results if result is not None]

    def _warn_if_nothing_fits(self) -> None:
        wanted = _resources(self.executor.settings)
        if not any(_fits(node, wanted) for node in self.ray.nodes()):
            log.warning(
                "no live node of the Ray cluster has what one run asks for (%s); the runs wait until such a node joins "
                "(Ctrl-C stops them), or lower [train.ray] *_per_run",
                wanted,
            )

    def _submit(self, attempt: Attempt, scheduling: Any = "DEFAULT") -> None:
        spec = self.specs[attempt.index]
        attempt.recorder = OutputRecorder(spec.run_id)
        settings = self.executor.settings
        ref = self.task.options(**self.task_options, scheduling_strategy=scheduling).remote(
            spec.model_dump_json(),
            self.policy_json,
            self.code_refs[spec.workspace],
            self.queue,
            attempt.number,
            str(settings.cache_dir) if settings.cache_dir else None,
            int(settings.return_mb * 2**20),
        )
        self.pending[ref] = attempt
        self.attempts[(spec.run_id, attempt.number)] = attempt

    def _settle(self, ref: Any, stopping: bool) -> None:
        """Turn a task that has ended into its run's result, or into a retry; `stopping`: after Ctrl-C."""
        from ray.exceptions import (
            NodeDiedError,
            ObjectLostError,
            OutOfMemoryError,
            RayTaskError,
            TaskCancelledError,
            WorkerCrashedError,
        )

        attempt = self.pending.pop(ref)
        spec = self.specs[attempt.index]
        try:
            self.results[attempt.index] = land(spec, self.ray.get(ref))
        except TaskCancelledError:
            self._finish(attempt.index, not_started(spec, self.executor.report))
        except (WorkerCrashedError, NodeDiedError, ObjectLostError) as exc:
            if stopping:
                self._finish(
                    attempt.index,
                    self._driver_record(
                        attempt,
                        "interrupted",
                        f"stopped by Ctrl-C; the Ray worker ended with {type(exc).__name__}",
                    ),
                )
            else:
                self._lost(attempt, exc)
        except OutOfMemoryError as exc:
            reason = (
                f"Ray's memory monitor killed the worker on {attempt.where()}: {_first_line(exc)}"
            )
            self._finish(attempt.index, self._driver_record(attempt, "out_of_memory", reason))
        except RayTaskError as exc:
            # vibe-research's own code failed on the worker (the experiment's failures are outcomes, not errors)
            reason = f"the Ray task failed on {attempt.where()}: {_first_line(exc.cause or exc)}"
            self._finish(attempt.index, self._driver_record(attempt, "crash", reason))

    def _lost(self, attempt: Attempt, exc: Exception) -> None:
        """Record the dead attempt in RUN_DIR/attempt-N/; retry once, away from the node that died."""
        spec = self.specs[attempt.index]
        reason = f"the Ray worker running attempt {attempt.number} on {attempt.where()} died ({type(exc).__name__}: {_first_line(exc)})"
        if attempt.number == ATTEMPTS:
            self._finish(
                attempt.index, self._driver_record(attempt, "crash", reason + "; no retries left")
            )
            return
        lost = self._driver_record(
            attempt,
            "crash",
            reason + "; retried on another node",
            spec.run_dir / f"attempt-{attempt.number}",
        )
        log.warning("%s: %s", spec.run_id, lost.reason)
        self._emit(
            spec.run_id,
            {"event": "status", "phase": "retry", "attempt": attempt.number + 1, "reason": reason},
        )
        self._submit(Attempt(attempt.index, attempt.number + 1), self._elsewhere(attempt.node_id))

    def _elsewhere(self, dead_node: str | None) -> Any:
        """Prefer a live node other than `dead_node` that can hold a run; Ray's choice when none is."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        wanted = _resources(self.executor.settings)
        for node in self.ray.nodes():
            if node["NodeID"] != dead_node and _fits(node, wanted):
                return NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)
        return "DEFAULT"

    def _driver_record(
        self, attempt: Attempt, outcome: Outcome, reason: str, run_dir: Path | None = None
    ) -> RunResult:
        """A record the driver writes itself, from the events it received of `attempt`."""
        spec = self.specs[attempt.index]
        if run_dir is not None:
            spec = spec.model_copy(update={"run_dir": run_dir})
        recorder = attempt.recorder or OutputRecorder(spec.run_id)
        return record(spec, outcome, reason, attempt.started, self.executor.report, recorder)

    def _finish(self, index: int, result: RunResult) -> None:
        """A result the worker did not send: store it and tell the progress display."""
        self.results[index] = result
        self._emit(
            result.run_id,
            {
                "event": "status",
                "phase": "finished",
                "outcome": result.outcome,
                "reason": result.reason,
            },
        )

    def _emit(self, run_id: str, event: dict) -> None:
        if self.on_event:
            self.on_event(run_id, event)

    def _drain(self) -> None:
        """Hand every queued event to `on_event`; remember where each attempt runs."""
        size = self.queue.qsize()
        for run_id, number, event in self.queue.get_nowait_batch(size) if size else []:
            attempt = self.attempts.get((run_id, number))
            if attempt is not None:
                if event.get("phase") == "placed":
                    attempt.node_id, attempt.host = event["node_id"], event["host"]
                elif event["event"] != "status" and attempt.recorder is not None:
                    attempt.recorder.stdout_line(json.dumps(event))
            self._emit(run_id, event)

    def _cancel(self) -> None:
        """Ctrl-C: ask each task to stop, wait for their interrupted records, then force what is left."""
        for ref in self.pending:
            self.ray.cancel(ref, force=False)
        deadline = time.monotonic() + self.executor.policy.kill_after_s + CANCEL_WAIT_S
        try:
            while self.pending and time.monotonic() < deadline:
                ready, _ = self.ray.wait(
                    list(self.pending), num_returns=len(self.pending), timeout=POLL_S
                )
                for ref in ready:
                    self._settle(ref, stopping=True)
        except KeyboardInterrupt:
            log.warning("second Ctrl-C: force-cancelling %d Ray task(s)", len(self.pending))
        for ref, attempt in list(self.pending.items()):
            self.ray.cancel(ref, force=True)
            del self.pending[ref]
            self._finish(
                attempt.index,
                self._driver_record(
                    attempt,
                    "interrupted",
                    "stopped by Ctrl-C; the Ray task did not stop in time and was force-cancelled",
                ),
            )
        for index, spec in enumerate(self.specs):
            if self.results[index] is None:
                self._finish(index, not_started(spec, self.executor.report))
