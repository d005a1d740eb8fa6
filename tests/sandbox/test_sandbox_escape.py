"""The escape suite: each training script tries one way out; each must be blocked or contained,
recorded with the right outcome, and leave the workspace and HOME byte-identical.
"""

import socket
import uuid
from pathlib import Path

import pytest
from toy import SECRET, spec_for, tree_digest

from vibe_research.runs.executor import LocalExecutor
from vibe_research.runs.result import RunResult
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import probe

pytestmark = pytest.mark.skipif(
    not probe().active("landlock-files"),
    reason="needs Landlock (Linux 5.13+ with landlock enabled)",
)


def attack(
    workspace: Path,
    home: Path,
    name: str,
    policy: SandboxPolicy | None = None,
    budget_s: float = 20,
    **settings: str,
) -> RunResult:
    before = tree_digest(workspace), tree_digest(home)
    spec = spec_for(
        workspace, "escape.py", f"{name}-{uuid.uuid4().hex[:6]}", budget_s, attack=name, **settings
    )
    spec = spec.model_copy(update={"tokenizer": "bytes", "evaluate": False})
    [result] = LocalExecutor(policy or SandboxPolicy()).execute([spec])
    assert (tree_digest(workspace), tree_digest(home)) == before, "the workspace or HOME changed"
    assert SECRET not in (spec.run_dir / "train.log").read_text()
    return result


@pytest.mark.parametrize(
    "target",
    ["~/.ssh/id_ed25519", "~/.netrc", ".env", "notes/README.md", ".git/HEAD", "/etc/shadow"],
)
def test_reading_secrets_is_refused(workspace: Path, home: Path, target: str) -> None:
    path = home / target[2:] if target.startswith("~/") else workspace / target
    result = attack(workspace, home, "read_file", target=str(path))
    assert result.outcome == "sandbox_violation" and "Permission denied" in result.reason
    assert not list(workspace.glob(".vibe/runs/*/stolen.txt"))


def test_reading_validation_data_during_training_is_refused(workspace: Path, home: Path) -> None:
    result = attack(workspace, home, "read_valid")
    assert result.outcome == "sandbox_violation" and "Permission denied" in result.reason


def test_api_keys_never_reach_the_run(workspace: Path, home: Path) -> None:
    result = attack(workspace, home, "read_env", target="OPENAI_API_KEY")
    assert result.outcome == "ok"
    assert "OPENAI_API_KEY=None" in result.log_tail
    environ = (result.spec.run_dir / "environ.txt").read_text()
    assert SECRET not in environ and f"HOME={home}" not in environ


def test_the_runners_environment_is_out_of_reach_through_proc(workspace: Path, home: Path) -> None:
    result = attack(workspace, home, "read_parent_env")
    assert result.outcome == "sandbox_violation" and "Permission denied" in result.reason


@pytest.mark.parametrize(
    "target", ["notes/new.md", ".git/config", "~/.bashrc", "evil.txt", "/tmp/vibe-escape-{uuid}"]
)
def test_writing_outside_the_run_folder_is_refused(
    workspace: Path, home: Path, target: str
) -> None:
    target = target.replace("{uuid}", uuid.uuid4().hex)
    path = (
        Path(target)
        if target.startswith("/")
        else home / target[2:]
        if target.startswith("~/")
        else workspace / target
    )
    result = attack(workspace, home, "write_file", target=str(path))
    assert result.outcome == "sandbox_violation" and "Permission denied" in result.reason
    assert not path.exists()


def test_tcp_to_a_local_listener_is_refused(workspace: Path, home: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        result = attack(workspace, home, "connect", port=str(listener.getsockname()[1]))
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.outcome == "sandbox_violation"


def test_a_unix_socket_like_docker_sock_is_refused(workspace: Path, home: Path) -> None:
    path = Path(
        f"/tmp/vibe-escape-{uuid.uuid4().hex[:8]}.sock"
    )  # where such sockets live: outside every grant
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen()
        listener.setblocking(False)
        try:
            result = attack(workspace, home, "connect_unix", target=str(path))
            with pytest.raises(BlockingIOError):
                listener.accept()
        finally:
            path.unlink()
    assert result.outcome == "sandbox_violation" and "Permission denied" in result.reason


def test_a_fork_bomb_hits_the_task_limit_and_dies(workspace: Path, home: Path) -> None:
    result = attack(workspace, home, "fork_bomb", SandboxPolicy(processes=64), count="400")
    assert result.outcome == "sandbox_violation" and "task limit" in result.reason


def test_allocating_64_gb_is_out_of_memory(workspace: Path, home: Path) -> None:
    result = attack(workspace, home, "allocate", count="64")
    assert result.outcome == "out_of_memory"


@pytest.mark.skipif(not probe().active("memory-cgroup"), reason="needs a writable memory cgroup")
def test_memory_spread_over_processes_meets_the_cgroup_cap(workspace: Path, home: Path) -> None:
    result = attack(
        workspace, home, "allocate_in_children", SandboxPolicy(memory_gb=0.6), count="4"
    )
    assert result.outcome == "out_of_memory" and "memory cap" in result.reason


def test_filling_the_run_folder_past_its_cap_is_stopped(workspace: Path, home: Path) -> None:
    result = attack(workspace, home, "fill_disk", SandboxPolicy(run_dir_gb=0.05), count="40")
    assert result.outcome == "sandbox_violation" and "run folder" in result.reason
    assert not list(result.spec.run_dir.glob("fill-*.bin"))


def test_a_file_past_the_size_cap_is_killed(workspace: Path, home: Path) -> None:
    result = attack(workspace, home, "big_file", SandboxPolicy(file_size_gb=0.01), count="100")
    assert result.outcome == "sandbox_violation" and "size cap" in result.reason
    assert (result.spec.run_dir / "big.bin").stat().st_size <= 0.01 * 2**30


def test_ignoring_sigterm_ends_in_sigkill_at_budget_plus_grace(workspace: Path, home: Path) -> None:
    result = attack(
        workspace, home, "ignore_sigterm", SandboxPolicy(grace_s=0.5, kill_after_s=1), budget_s=2
    )
    assert result.outcome == "timeout" and "SIGKILL" in result.reason
    assert result.duration_s < 10


def test_a_daemon_left_behind_is_killed(workspace: Path, home: Path) -> None:
    result = attack(workspace, home, "daemon")
    assert result.outcome == "sandbox_violation" and "left" in result.reason
    pid = int((result.spec.run_dir / "daemon.pid").read_text())
    assert not alive(pid)


def alive(pid: int) -> bool:
    """Running or sleeping; a killed orphan may linger as a zombie until init reaps it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
