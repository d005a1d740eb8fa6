"""The launcher as a normal user (nobody, through setpriv): Landlock and the network namespace
confine it just as they confine root; the same script without the launcher is not confined."""

import json
import os
import shutil
import site
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vibe_research.sandbox.limits import user_task_count
from vibe_research.sandbox.plan import RunPaths, build_plan
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import probe

NOBODY = 65534
# The venv's interpreter may live under /root, closed to nobody: use the system one, given this
# package and its dependencies through PYTHONPATH.
SYSTEM_PYTHON = Path("/usr/bin/python3")
PYTHONPATH = os.pathsep.join([str(Path(__file__).resolve().parents[2]), *site.getsitepackages()])
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or not SYSTEM_PYTHON.is_file(),
    reason="needs root, setpriv and /usr/bin/python3 to run as the nobody user",
)

ATTEMPTS = """
import json, socket, sys
from pathlib import Path
base, port = Path(sys.argv[1]), int(sys.argv[2])
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return exc.strerror
print(json.dumps({
    "read secret": attempt(lambda: (base / "secret.txt").read_text()),
    "write outside": attempt(lambda: (base / "outside" / "x").write_text("x")),
    "write run folder": attempt(lambda: (base / "run" / "x").write_text("x")),
    "tcp connect": attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close()),
}))
"""


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder nobody can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="vibe-user-", dir="/tmp"))
    folder.chmod(0o755)
    (folder / "secret.txt").write_text("secret")
    (folder / "secret.txt").chmod(0o644)
    for name in ("outside", "run", "run/tmp"):
        (folder / name).mkdir()
        (folder / name).chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def as_nobody(base: Path, port: int, launcher: list[str]) -> dict[str, str]:
    command = [
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        *launcher,
        str(SYSTEM_PYTHON),
        "-c",
        ATTEMPTS,
        str(base),
        str(port),
    ]
    env = {"PATH": os.environ["PATH"], "HOME": str(base), "PYTHONPATH": PYTHONPATH}
    done = subprocess.run(command, cwd=base, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_normal_user_is_confined_by_the_launcher(base: Path) -> None:
    policy = SandboxPolicy()
    paths = RunPaths(workspace=base / "ws", run_dir=base / "run", tmp_dir=base / "run" / "tmp")
    plan = build_plan(policy, probe(policy), paths, []).model_copy(
        update={
            "drop_capabilities": False,
            "rlimits": {
                "RLIMIT_CORE": 0,
                "RLIMIT_NPROC": user_task_count(NOBODY) + policy.processes,
            },
        }
    )
    launcher = [
        str(SYSTEM_PYTHON),
        "-m",
        "vibe_research.sandbox.launch",
        plan.model_dump_json(),
        "--",
    ]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        free = as_nobody(base, port, [])
        confined = as_nobody(base, port, launcher)
    assert free == {
        "read secret": "ok",
        "write outside": "ok",
        "write run folder": "ok",
        "tcp connect": "ok",
    }
    assert confined["read secret"] == confined["write outside"] == "Permission denied"
    assert confined["write run folder"] == "ok"
    assert confined["tcp connect"] in ("Permission denied", "Network is unreachable")
