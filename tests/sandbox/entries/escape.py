"""Training scripts gone bad: each attack tries one way out of the sandbox (`--set attack=NAME`).

Every attack is bounded, so a sandbox that fails to stop it still cannot hurt the machine.
"""

import os
import signal
import socket
import sys
import time
from pathlib import Path

from vibe_research.lm.experiment import parse_args
from vibe_research.lm.tokens import open_split

CONFIG = {
    "attack": "",  # which attack below
    "target": "",  # a path or a variable name, per attack
    "port": 0,  # TCP port of the test's listener
    "count": 0,  # bound: processes, megabytes or gigabytes, per attack
}


def read_file(config: dict, out: Path) -> None:
    text = Path(config["target"]).read_text()
    print(f"stolen: {text}")
    (out / "stolen.txt").write_text(text)


def read_valid(config: dict, out: Path) -> None:
    split = open_split("valid", "bytes")
    print(f"read {len(split.tokens)} validation tokens")


def read_env(config: dict, out: Path) -> None:
    print(f"{config['target']}={os.environ.get(config['target'])}")
    (out / "environ.txt").write_text(
        "\n".join(f"{key}={value}" for key, value in os.environ.items())
    )


def read_parent_env(config: dict, out: Path) -> None:
    environ = Path(f"/proc/{os.getppid()}/environ").read_bytes()  # the runner's, with its API keys
    print(environ.decode(errors="replace").replace("\0", "\n"))


def write_file(config: dict, out: Path) -> None:
    Path(config["target"]).write_text("written from inside the sandbox\n")


def connect(config: dict, out: Path) -> None:
    with socket.create_connection(("127.0.0.1", config["port"]), timeout=5) as conn:
        conn.sendall(b"escaped\n")


def connect_unix(config: dict, out: Path) -> None:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(config["target"])
        conn.sendall(b"escaped\n")


def fork_bomb(config: dict, out: Path) -> None:
    for _ in range(config["count"]):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    print(f"forked {config['count']} processes")


def allocate(config: dict, out: Path) -> None:
    block = bytearray(config["count"] * 2**30)  # zero-filled: the pages are really committed
    print(f"allocated {len(block)} bytes")


def allocate_in_children(config: dict, out: Path) -> None:
    children = []
    for _ in range(config["count"]):  # count: children of 300 MB each, every page written
        if (pid := os.fork()) == 0:
            block = b"\x01" * (300 * 2**20)  # noqa: F841 (held while the others allocate)
            time.sleep(5)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def fill_disk(config: dict, out: Path) -> None:
    chunk = os.urandom(2**20)
    for index in range(config["count"]):  # count: files of 16 MB each
        with open(out / f"fill-{index}.bin", "wb") as handle:
            for _ in range(16):
                handle.write(chunk)


def big_file(config: dict, out: Path) -> None:
    chunk = os.urandom(2**20)
    with open(out / "big.bin", "wb") as handle:
        for _ in range(config["count"]):  # count: megabytes
            handle.write(chunk)


def ignore_sigterm(config: dict, out: Path) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)


def daemon(config: dict, out: Path) -> None:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            (out / "daemon.pid").write_text(str(os.getpid()))
            time.sleep(120)
        os._exit(0)
    time.sleep(0.5)


ATTACKS = {
    function.__name__: function
    for function in (
        read_file,
        read_valid,
        read_env,
        read_parent_env,
        write_file,
        connect,
        connect_unix,
        fork_bomb,
        allocate,
        allocate_in_children,
        fill_disk,
        big_file,
        ignore_sigterm,
        daemon,
    )
}


def main() -> None:
    experiment = parse_args(CONFIG)
    ATTACKS[experiment.config["attack"]](experiment.config, experiment.out)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
