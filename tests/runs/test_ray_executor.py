"""RayExecutor on a real local Ray cluster: a head on 127.0.0.1 and one worker node, each a
`ray start --block` process group started here, with one CPU each, and stopped at the end.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from toy import ENTRIES, SECRET, spec_for

from vibe_research.lm.errors import UserError
from vibe_research.runs.executor import LocalExecutor
from vibe_research.runs.ray_executor import RayExecutor, _collect, bundle_code, cluster_check
from vibe_research.runs.result import RunResult
from vibe_research.runs.settings import RaySettings
from vibe_research.sandbox.policy import SandboxPolicy

RAY = str(Path(sys.executable).parent / "ray")
START_TIMEOUT_S = 60
SURVIVOR_WAIT_S = 4
# The head declares a node dead after 3 missed 0.5 s health checks (Ray's default takes ~15 s).
SYSTEM_CONFIG = json.dumps(
    {
        "health_check_period_ms": 500,
        "health_check_failure_threshold": 3,
        "health_check_initial_delay_ms": 0,
    }
)


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


def wait_until_gone(text: str, wait_s: float) -> list[int]:
    """Wait up to `wait_s` for the processes mentioning `text` to end; those still alive."""
    deadline = time.monotonic() + wait_s
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


class LocalCluster:
    """A head and one worker node on 127.0.0.1, in a private temp dir, each node its own process group."""

    def __init__(self) -> None:
        # short: Ray puts unix sockets under it, and their paths are limited to 107 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="vr-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        self.head = self._start(
            "--head",
            f"--port={self.port}",
            f"--temp-dir={self.temp_dir}",
            f"--system-config={SYSTEM_CONFIG}",
            "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
        )
        # `ray start --address` waits for the head, so both nodes start side by side
        self.worker = self._start(f"--address={self.address}")
        self.head_node_id = ""

    def _start(self, *args: str) -> subprocess.Popen:
        ports = [
            f"--{name}={free_port()}"
            for name in (
                "node-manager-port",
                "object-manager-port",
                "metrics-export-port",
                "dashboard-agent-listen-port",
                "dashboard-agent-grpc-port",
                "runtime-env-agent-port",
            )
        ]
        argv = [
            RAY,
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--num-gpus=0",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            *ports,
            *args,
        ]
        return subprocess.Popen(
            argv,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

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
        raise RuntimeError(
            f"the local Ray cluster did not reach {count} node(s) in {START_TIMEOUT_S} s"
        )

    def kill_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGKILL each node's group (ray start, GCS, raylet); its Ray workers, in sessions of their own,
        exit when their raylet is gone, and any that has not within 10 s is killed by its pid."""
        for proc in (self.worker, self.head):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pid in wait_until_gone(self.temp_dir, 10):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)  # the nodes' session logs and sockets


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with pytest.MonkeyPatch.context() as patch:
        # Ray 2.5x turns token auth on for `ray start --head` when ~/.ray/auth_token exists, but not
        # for clients given an explicit address; say it for every process of this private cluster.
        patch.setenv("RAY_AUTH_MODE", "disabled")
        started = LocalCluster()
        try:
            status = started.wait_for_nodes(2)
            [started.head_node_id] = [node["node_id"] for node in status["nodes"] if node["head"]]
            yield started
        finally:
            started.stop()
    assert not processes_mentioning(started.temp_dir), "Ray processes of the test cluster survived"


def comparable(result: RunResult) -> dict:
    """The parts of a record that do not depend on when, where or under which id it ran."""
    return {
        "outcome": result.outcome,
        "reason": result.reason,
        "exit_code": result.exit_code,
        "tokenizer": result.spec.tokenizer,
        "steps": result.summary.steps,
        "tokens": result.summary.tokens,
        "done": result.summary.done,
        "losses": [loss for _, _, loss in result.summary.loss_curve],
        "bpb": result.evaluation.bpb if result.evaluation else None,
        "eval_tokens": result.evaluation.tokens if result.evaluation else None,
        "samples": len(result.evaluation.samples) if result.evaluation else None,
        "sandbox": result.sandbox,
        "lm_fingerprint": result.lm_fingerprint,
        "python": result.python,
        "torch": result.torch,
    }


@pytest.mark.slow
def test_three_runs_on_two_nodes_give_the_local_records(
    cluster: LocalCluster, workspace: Path, home: Path
) -> None:
    [local] = LocalExecutor(SandboxPolicy()).execute(
        [spec_for(workspace, "toy_train.py", "local-0", steps="4")]
    )
    assert local.outcome == "ok", (local.reason, local.log_tail)
    events: list[tuple[str, dict]] = []
    specs = [spec_for(workspace, "toy_train.py", f"ray-{index}", steps="4") for index in range(3)]
    results = RayExecutor(SandboxPolicy(), RaySettings(address=cluster.address)).execute(
        specs, lambda run_id, event: events.append((run_id, event))
    )
    assert [result.run_id for result in results] == [spec.run_id for spec in specs]
    nodes = set()
    for spec, result in zip(specs, results, strict=True):
        assert comparable(result) == comparable(local), (result.reason, result.log_tail)
        assert result.spec == spec.model_copy(update={"tokenizer": "bytes"})
        assert result.evaluation.run_dir == str(spec.run_dir) and result.evaluation.entry == str(
            spec.entry_path
        )
        assert {path.name for path in spec.run_dir.iterdir()} == {
            path.name for path in local.spec.run_dir.iterdir()
        }
        assert RunResult.model_validate_json((spec.run_dir / "result.json").read_text()) == result
        kinds = [
            json.loads(line)["event"]
            for line in (spec.run_dir / "events.jsonl").read_text().splitlines()
        ]
        assert kinds == ["start", "step", "step", "step", "step", "done"]
        streamed = [event for run_id, event in events if run_id == spec.run_id]
        phases = [event["phase"] for event in streamed if event["event"] == "status"]
        assert phases == ["placed", "describe", "calibrate", "train", "evaluate", "finished"]
        assert [event["event"] for event in streamed if event["event"] != "status"] == kinds
        nodes.add(streamed[0]["node_id"])
    assert len(nodes) == 2, "the three runs did not use both nodes"


@pytest.mark.slow
def test_a_worker_without_the_token_cache_records_why(
    cluster: LocalCluster, workspace: Path, home: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "not-mounted"
    spec = spec_for(workspace, "toy_train.py", "no-cache")
    [result] = RayExecutor(
        SandboxPolicy(), RaySettings(address=cluster.address, cache_dir=missing)
    ).execute([spec])
    assert (
        result.outcome == "crash"
        and str(missing) in result.reason
        and "[train.ray] cache_dir" in result.reason
    )
    assert (
        RunResult.model_validate_json((spec.run_dir / "result.json").read_text()).reason
        == result.reason
    )


def test_only_the_experiments_code_is_shipped(workspace: Path) -> None:
    (workspace / "experiments" / "__pycache__").mkdir()
    (workspace / "experiments" / "__pycache__" / "toy_train.cpython-311.pyc").write_bytes(b"stale")
    (workspace / "experiments" / "lib").mkdir()
    (workspace / "experiments" / "lib" / "helpers.py").write_text("X = 1\n")
    code = bundle_code(workspace)
    assert set(code) == {
        f"experiments/{path.name}" for path in (workspace / "experiments").glob("*.py")
    } | {"experiments/lib/helpers.py"}
    assert (
        code["experiments/toy_train.py"]
        == (workspace / "experiments" / "toy_train.py").read_bytes()
    )
    with pytest.raises(UserError, match="experiments/ folder"):
        bundle_code(workspace / "notes")


def test_bad_input_is_one_clear_line_before_any_ray_work(workspace: Path) -> None:
    with pytest.raises(UserError, match="nothing answers at the Ray address"):
        cluster_check(RaySettings(address=f"127.0.0.1:{free_port()}"))
    spec = spec_for(workspace, "toy_train.py", "outside").model_copy(update={"entry": "train.py"})
    with pytest.raises(UserError, match=r"train.py is outside it"):
        RayExecutor(SandboxPolicy(), RaySettings(address="127.0.0.1:1")).execute([spec])


@pytest.mark.slow
def test_ctrl_c_stops_every_run_and_leaves_nothing_running(
    cluster: LocalCluster, workspace: Path, home: Path
) -> None:
    # Two runs train (one per node), the third waits for a CPU; Ctrl-C once both have stepped.
    specs = [
        spec_for(workspace, "toy_train.py", f"int-{index}", steps="60", step_sleep_s="0.5")
        for index in range(3)
    ]
    stepped: set[str] = set()

    def on_event(run_id: str, event: dict) -> None:
        if event["event"] == "step" and run_id not in stepped:
            stepped.add(run_id)
            if len(stepped) == 2:
                os.kill(os.getpid(), signal.SIGINT)

    began = time.monotonic()
    results = RayExecutor(SandboxPolicy(), RaySettings(address=cluster.address)).execute(
        specs, on_event
    )
    assert time.monotonic() - began < 25, "Ctrl-C did not stop the runs promptly"
    assert [result.outcome for result in results] == ["interrupted"] * 3
    by_id = {result.run_id: result for result in results}
    assert {by_id[run_id].reason for run_id in stepped} == {
        "training stopped by Ctrl-C"
    }  # recorded by the workers
    [waiting] = [result for result in results if result.run_id not in stepped]
    assert waiting.reason == "not started: stopped by Ctrl-C"
    for spec in specs:
        assert (
            RunResult.model_validate_json((spec.run_dir / "result.json").read_text()).outcome
            == "interrupted"
        )
    assert not wait_until_gone("vibe-ray-int-", SURVIVOR_WAIT_S), (
        "an interrupted run left processes running"
    )


@pytest.mark.slow
def test_a_killed_worker_node_is_recorded_and_the_run_retried(
    cluster: LocalCluster, workspace: Path, home: Path
) -> None:
    status = cluster_check(RaySettings(address=cluster.address))
    assert status["runs_at_once"] == 2 and status["total"]["CPU"] == 2
    # Two runs fill both one-CPU nodes; the one on the worker node loses its node after its first step.
    specs = [
        spec_for(workspace, "toy_train.py", f"kill-{index}", steps="16", step_sleep_s="0.5")
        for index in range(2)
    ]
    placed: dict[str, str] = {}
    killed: list[str] = []
    survivors: list[int] = []
    phases: list[tuple[str, str]] = []

    def on_event(run_id: str, event: dict) -> None:
        if event["event"] == "status":
            phases.append((run_id, event["phase"]))
        if event.get("phase") == "placed":
            placed[run_id] = event["node_id"]
        if event["event"] == "step" and not killed and placed.get(run_id) != cluster.head_node_id:
            killed.append(run_id)
            cluster.kill_worker()
            # the training has ~7 s of steps left: its processes must go with the node, not run on
            survivors.extend(wait_until_gone(f"vibe-ray-{run_id}-1-", SURVIVOR_WAIT_S))

    # return_mb below the model's 512 KiB: the records come back, bigram.npz stays on the worker
    results = RayExecutor(
        SandboxPolicy(), RaySettings(address=cluster.address, return_mb=0.25)
    ).execute(specs, on_event)
    assert killed, "no run was placed on the worker node"
    assert [result.outcome for result in results] == ["ok", "ok"], [
        (result.reason, result.log_tail) for result in results
    ]
    [victim] = [spec for spec in specs if spec.run_id == killed[0]]
    lost = RunResult.model_validate_json((victim.run_dir / "attempt-1" / "result.json").read_text())
    assert (
        lost.outcome == "crash"
        and "died" in lost.reason
        and "retried on another node" in lost.reason
    )
    assert lost.summary.steps >= 1  # the steps streamed before the node died are in the record
    assert placed[victim.run_id] == cluster.head_node_id  # the retry ran on the head
    victim_phases = [phase for run_id, phase in phases if run_id == victim.run_id]
    assert victim_phases[:4] == ["placed", "describe", "calibrate", "train"]
    assert victim_phases[4:] == [
        "retry",
        "placed",
        "describe",
        "calibrate",
        "train",
        "evaluate",
        "finished",
    ]
    assert not survivors, f"the lost attempt left processes running: {survivors}"
    for spec, result in zip(specs, results, strict=True):
        assert (
            not (spec.run_dir / "bigram.npz").exists() and (spec.run_dir / "events.jsonl").is_file()
        )
        kept = Path(result.log_tail.rsplit("return_mb): ", 1)[1])
        assert kept.name == "bigram.npz" and kept.is_file()
        shutil.rmtree(kept.parents[1])
    for scratch in Path(tempfile.gettempdir()).glob(f"vibe-ray-{victim.run_id}-1-*"):
        shutil.rmtree(scratch)  # the lost attempt's scratch workspace, left behind by the dead node


def _plant_links(run_dir: Path, secret: Path) -> None:
    """What a run could leave in its folder to have the worker send back a file it cannot read."""
    (run_dir / "stolen.txt").symlink_to(secret)
    (run_dir / "stolen-dir").symlink_to(secret.parent, target_is_directory=True)
    os.link(secret, run_dir / "hard.txt")
    os.mkfifo(run_dir / "pipe")


def test_collecting_a_run_folder_never_follows_links(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    run_dir = tmp_path / "run"
    (run_dir / "ckpt").mkdir(parents=True)
    (run_dir / "result.json").write_text("{}")
    (run_dir / "ckpt" / "model.bin").write_bytes(b"\0" * 1000)
    _plant_links(run_dir, secret)
    (run_dir / "ckpt" / "nested-link").symlink_to(secret)

    files, left, refused = _collect(run_dir, return_bytes=2**20)

    assert set(files) == {"result.json", "ckpt/model.bin"} and left == []
    assert refused == [
        "ckpt/nested-link (a symbolic link)",
        "hard.txt (a hard link)",
        "pipe (not a plain file)",
        "stolen-dir (a symbolic link)",
        "stolen.txt (a symbolic link)",
    ]
    # over return_mb the records come back, the rest stays; links are refused all the same
    files, left, small_refused = _collect(run_dir, return_bytes=100)
    assert set(files) == {"result.json"} and left == [str(run_dir / "ckpt" / "model.bin")]
    assert small_refused == refused


LINKING_ENTRY = """
if __name__ == "__main__":
    import os
    import sys

    main()
    out = Path(sys.argv[sys.argv.index("--out") + 1])
    os.symlink({secret!r}, out / "stolen.txt")
    os.symlink({folder!r}, out / "stolen-dir")
"""


@pytest.mark.slow
def test_a_run_on_ray_never_sends_back_a_file_it_links_to(
    cluster: LocalCluster, workspace: Path, home: Path
) -> None:
    secret = home / ".ssh" / "id_ed25519"  # planted by the fixture, outside what runs may read
    toy = (ENTRIES / "toy_train.py").read_text()
    main_guard = toy.index('if __name__ == "__main__":')
    entry = toy[:main_guard] + LINKING_ENTRY.format(secret=str(secret), folder=str(secret.parent))
    (workspace / "experiments" / "toy_link.py").write_text(entry)
    spec = spec_for(workspace, "toy_link.py", "linker", steps="2")

    [result] = RayExecutor(SandboxPolicy(), RaySettings(address=cluster.address)).execute([spec])

    assert result.outcome == "ok", (result.reason, result.log_tail)
    assert not (spec.run_dir / "stolen.txt").exists() and not (spec.run_dir / "stolen-dir").exists()
    for path in spec.run_dir.rglob("*"):
        assert path.is_symlink() or not path.is_file() or SECRET.encode() not in path.read_bytes()
    assert "stolen-dir (a symbolic link), stolen.txt (a symbolic link)" in result.log_tail


LOCAL_RAY_PROBE = """
import json, os
import grpc
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
from vibe_research.runs.ray_executor import ray_session
from vibe_research.runs.settings import RaySettings

def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found

def listening(pids):
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        inodes |= {int(link[8:-1]) for link in links if link.startswith("socket:[")}
    hosts = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[9]) in inodes:  # 0A: LISTEN
                hosts.append(fields[1].split(":")[0])
    return hosts

def ask_gcs(address, metadata):
    stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(grpc.insecure_channel(address))
    try:
        stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), metadata=metadata, timeout=10)
        return "answered"
    except grpc.RpcError as exc:
        return exc.code().name

with ray_session(RaySettings()) as ray:
    gcs = ray.get_runtime_context().gcs_address
    token = os.environ["RAY_AUTH_TOKEN"]
    report = {
        "gcs": gcs,
        "hosts": listening(descendants(os.getpid())),
        "task_auth_mode": ray.get(ray.remote(lambda: os.environ.get("RAY_AUTH_MODE")).remote()),
        "without_token": ask_gcs(gcs, []),
        "wrong_token": ask_gcs(gcs, [("authorization", "Bearer wrong")]),
        "with_token": ask_gcs(gcs, [("authorization", f"Bearer {token}")]),
    }
report["auth_mode_after"] = os.environ.get("RAY_AUTH_MODE")
print(json.dumps(report))
"""
# /proc/net/tcp{,6} hex of 127.0.0.1, and of ::1 and ::ffff:127.0.0.1
LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.mark.slow
def test_the_local_ray_listens_on_loopback_only_and_wants_a_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="vr-", dir="/tmp")  # short: Ray's unix socket paths
    env = dict(
        os.environ,
        HOME=str(home),
        RAY_TMPDIR=ray_tmp,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="disabled",  # as set for a cluster; the local Ray turns auth on anyway
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", LOCAL_RAY_PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S * 2,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["gcs"].startswith("127.0.0.1:")
    assert report["hosts"] and set(report["hosts"]) <= LOOPBACK_HEX, report["hosts"]
    assert report["task_auth_mode"] == "token"
    assert (report["without_token"], report["wrong_token"], report["with_token"]) == (
        "UNAUTHENTICATED",
        "UNAUTHENTICATED",
        "answered",
    )
    assert report["auth_mode_after"] == "disabled"  # the caller's environment, as it was
    assert not (home / ".ray").exists(), "the token went to a file in HOME"
