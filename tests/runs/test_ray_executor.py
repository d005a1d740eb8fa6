"""RayExecutor on a real local Ray cluster: a head on 127.0.0.1 and one worker node, each a
`ray start --block` process group started here, with one CPU each, and stopped at the end.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from toy import spec_for

from vibe_research.lm.errors import UserError
from vibe_research.runs.executor import LocalExecutor
from vibe_research.runs.ray_executor import RayExecutor, cluster_check
from vibe_research.runs.result import RunResult
from vibe_research.runs.settings import RaySettings
from vibe_research.sandbox.policy import SandboxPolicy

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
START_TIMEOUT_S = 60
# The head declares a node dead after 3 missed 0.5 s health checks (Ray's default takes ~15 s).
SYSTEM_CONFIG = json.dumps({"health_check_period_ms": 500, "health_check_failure_threshold": 3, "health_check_initial_delay_ms": 0})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class LocalCluster:
    """A head and one worker node on 127.0.0.1, in a private temp dir, each node its own process group."""

    def __init__(self) -> None:
        # short: Ray puts unix sockets under it, and their paths are limited to 107 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="vr-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        self.head = self._start("--head", f"--port={self.port}", f"--temp-dir={self.temp_dir}", f"--system-config={SYSTEM_CONFIG}",
                                "--include-dashboard=false", f"--ray-client-server-port={free_port()}")
        self.worker: subprocess.Popen | None = None
        self.head_node_id = ""

    def _start(self, *args: str) -> subprocess.Popen:
        ports = [f"--{name}={free_port()}" for name in ("node-manager-port", "object-manager-port", "metrics-export-port",
                                                         "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port")]
        argv = [RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
                "--object-store-memory=100000000", "--disable-usage-stats", *ports, *args]
        return subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def start_worker(self) -> None:
        self.worker = self._start(f"--address={self.address}")

    def wait_for_nodes(self, count: int) -> dict:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.head.poll() is not None:
                raise RuntimeError(f"ray head exited with {self.head.returncode}")
            try:
                status = cluster_check(RaySettings(address=self.address))
            except UserError:
                continue  # the head is not listening yet
            if sum(node["alive"] for node in status["nodes"]) == count:
                return status
            time.sleep(0.5)
        raise RuntimeError(f"the local Ray cluster did not reach {count} node(s) in {START_TIMEOUT_S} s")

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM each node's group (ray start --block then stops its node), SIGKILL what remains."""
        for proc in (self.worker, self.head):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        deadline = time.monotonic() + 10
        while (left := processes_mentioning(self.temp_dir)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in left:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    started = LocalCluster()
    try:
        [head] = started.wait_for_nodes(1)["nodes"]
        started.head_node_id = head["node_id"]
        started.start_worker()
        started.wait_for_nodes(2)
        yield started
    finally:
        started.stop()
    assert not processes_mentioning(started.temp_dir), "Ray processes of the test cluster survived"


def comparable(result: RunResult) -> dict:
    """The parts of a record that do not depend on when, where or under which id it ran."""
    return {
        "outcome": result.outcome, "reason": result.reason, "exit_code": result.exit_code, "tokenizer": result.spec.tokenizer,
        "steps": result.summary.steps, "tokens": result.summary.tokens, "done": result.summary.done,
        "losses": [loss for _, _, loss in result.summary.loss_curve],
        "bpb": result.evaluation.bpb if result.evaluation else None, "eval_tokens": result.evaluation.tokens if result.evaluation else None,
        "samples": len(result.evaluation.samples) if result.evaluation else None,
        "sandbox": result.sandbox, "lm_fingerprint": result.lm_fingerprint, "python": result.python, "torch": result.torch,
    }


def test_three_runs_on_two_nodes_give_the_local_records(cluster: LocalCluster, workspace: Path, home: Path) -> None:
    [local] = LocalExecutor(SandboxPolicy()).execute([spec_for(workspace, "toy_train.py", "local-0", steps="4")])
    assert local.outcome == "ok", (local.reason, local.log_tail)
    events: list[tuple[str, dict]] = []
    specs = [spec_for(workspace, "toy_train.py", f"ray-{index}", steps="4") for index in range(3)]
    results = RayExecutor(SandboxPolicy(), RaySettings(address=cluster.address)).execute(specs, lambda run_id, event: events.append((run_id, event)))
    assert [result.run_id for result in results] == [spec.run_id for spec in specs]
    nodes = set()
    for spec, result in zip(specs, results, strict=True):
        assert comparable(result) == comparable(local), (result.reason, result.log_tail)
        assert result.spec == spec.model_copy(update={"tokenizer": "bytes"})
        assert result.evaluation.run_dir == str(spec.run_dir) and result.evaluation.entry == str(spec.entry_path)
        assert {path.name for path in spec.run_dir.iterdir()} == {path.name for path in local.spec.run_dir.iterdir()}
        assert RunResult.model_validate_json((spec.run_dir / "result.json").read_text()) == result
        kinds = [json.loads(line)["event"] for line in (spec.run_dir / "events.jsonl").read_text().splitlines()]
        assert kinds == ["start", "step", "step", "step", "step", "done"]
        streamed = [event for run_id, event in events if run_id == spec.run_id]
        phases = [event["phase"] for event in streamed if event["event"] == "status"]
        assert phases == ["placed", "describe", "train", "evaluate", "finished"]
        assert [event["event"] for event in streamed if event["event"] != "status"] == kinds
        nodes.add(streamed[0]["node_id"])
    assert len(nodes) == 2, "the three runs did not use both nodes"


def test_a_killed_worker_node_is_recorded_and_the_run_retried(cluster: LocalCluster, workspace: Path, home: Path) -> None:
    status = cluster_check(RaySettings(address=cluster.address))
    assert status["runs_at_once"] == 2 and status["total"]["CPU"] == 2
    # Two runs fill both one-CPU nodes; the one on the worker node loses its node after its first step.
    specs = [spec_for(workspace, "toy_train.py", f"kill-{index}", steps="12", step_sleep_s="0.5") for index in range(2)]
    placed: dict[str, str] = {}
    killed: list[str] = []

    def on_event(run_id: str, event: dict) -> None:
        if event.get("phase") == "placed":
            placed[run_id] = event["node_id"]
        if event["event"] == "step" and not killed and placed.get(run_id) != cluster.head_node_id:
            killed.append(run_id)
            cluster.kill_worker()

    results = RayExecutor(SandboxPolicy(), RaySettings(address=cluster.address)).execute(specs, on_event)
    assert killed, "no run was placed on the worker node"
    assert [result.outcome for result in results] == ["ok", "ok"], [(result.reason, result.log_tail) for result in results]
    [victim] = [spec for spec in specs if spec.run_id == killed[0]]
    lost = RunResult.model_validate_json((victim.run_dir / "attempt-1" / "result.json").read_text())
    assert lost.outcome == "crash" and "died" in lost.reason and "retried on another node" in lost.reason
    assert lost.summary.steps >= 1  # the steps streamed before the node died are in the record
    assert placed[victim.run_id] == cluster.head_node_id  # the retry ran on the head
    assert not processes_mentioning(f"vibe-ray-{victim.run_id}-1"), "the lost attempt left processes running"
