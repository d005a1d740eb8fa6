"""The dashboard driven as a person would: `vibe-research ui` in a subprocess, Debian's Chromium
through Playwright, every request the page makes recorded."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from vibe_research.llm.config_block import read_config

DATA = Path(__file__).resolve().parent / "data"
CLI = [sys.executable, "-m", "vibe_research"]
CHROMIUM = Path("/usr/bin/chromium")
# What works on the development machine and in CI (root, no GPU, no network).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# A model small enough that a run trains for its budget and is evaluated in seconds on 2 cores.
TINY = {
    "tokenizer": "bytes",
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "context": 64,
    "batch_size": 8,
    "compile": "off",
    "dtype": "fp32",
    "threads": 1,
    "log_every": 5,
}


def vibe(workspace: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def dashboard(workspace: Path, *args: str) -> Iterator[str]:
    """`vibe-research ui` serving `workspace`; yields its URL, stops it with Ctrl-C."""
    # stderr to a file, not a pipe: a server that logs for long cannot fill it and block
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(
            [*CLI, "ui", *args],
            cwd=workspace,
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = process.stdout.readline() if process.stdout else ""
            if "http://" not in line:
                process.wait(timeout=10)
                errors.seek(0)
                pytest.fail(f"`vibe-research ui` gave no URL: {line!r} {errors.read()}")
            yield line[line.index("http://") :].strip()
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def repo_workspace(tmp_path: Path) -> Path:
    """A workspace holding a real research log: the settings and ledger of this repository's
    first log (17 experiments at 120 s, in git history since notes/ began a new one), kept in
    tests/ui/data so the pages are tested on the same records whatever notes/ holds now."""
    workspace = tmp_path / "research"
    (workspace / "notes").mkdir(parents=True)
    shutil.copyfile(DATA / "vibe-research-120s.toml", workspace / "vibe-research.toml")
    with gzip.open(DATA / "ledger-120s.jsonl.gz") as packed:
        (workspace / "notes" / "ledger.jsonl").write_bytes(packed.read())
    return workspace


def rewrite_ledger(workspace: Path, change: Callable[[dict], None]) -> None:
    """Apply `change` to every record of the workspace's ledger (as JSON objects)."""
    path = workspace / "notes" / "ledger.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for record in records:
        change(record)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _set_keys(text: str, section: str, values: dict[str, str]) -> str:
    """`key = value` lines of one TOML section set (added where the template has none)."""
    lines, current, done = text.splitlines(), None, set()
    out = []
    for line in lines:
        if line.startswith("["):
            if current == section:
                out += [f"{k} = {v}" for k, v in values.items() if k not in done]
            current = line.strip("[] ")
        key = line.split("=")[0].strip()
        if current == section and key in values and not line.startswith("#"):
            out.append(f"{key} = {values[key]}")
            done.add(key)
            continue
        out.append(line)
    if current == section:
        out += [f"{k} = {v}" for k, v in values.items() if k not in done]
    return "\n".join(out) + "\n"


@pytest.fixture
def tiny_workspace(tmp_path: Path) -> Path:
    """`vibe-research init` on synthetic stories (no network, no shared data), a tiny model and
    seconds of budget, committed."""
    workspace = tmp_path / "ws"
    done = vibe(tmp_path, "init", str(workspace))
    assert done.returncode == 0, done.stderr
    train_py = workspace / "experiments" / "train.py"
    text = train_py.read_text(encoding="utf-8")
    config = read_config(text)
    for key, value in TINY.items():
        edit = config[key].edit("experiments/train.py", value)
        text = text.replace(edit.search, edit.replace, 1)
    train_py.write_text(text, encoding="utf-8")
    settings = workspace / "vibe-research.toml"
    text = settings.read_text(encoding="utf-8")
    text = _set_keys(
        text,
        "data",
        {
            "source": '"synthetic"',
            "tokenizer": '"bytes"',
            "synthetic_train_stories": "1500",
            "synthetic_valid_stories": "40",
        },
    )
    text = _set_keys(
        text, "train", {"budget_s": "12", "runs_per_proposal": "2", "smoke_budget_s": "3"}
    )
    text = _set_keys(text, "judge", {"samples_per_run": "2"})
    settings.write_text(text, encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "tiny settings for tests"], cwd=workspace, check=True)
    return workspace


class Browser:
    """A fresh Chromium profile; `requests` holds every URL any page asked for."""

    def __init__(self, context) -> None:
        self.context = context
        self.requests: list[str] = []
        self.errors: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("weberror", lambda error: self.errors.append(str(error.error)))

    def page(self):
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def assert_only_loopback(self) -> None:
        assert self.requests, "the page made no request at all"
        outside = [url for url in self.requests if urlsplit(url).hostname != "127.0.0.1"]
        assert not outside, f"requests left 127.0.0.1: {outside}"
        assert not self.errors, self.errors


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
            env={**os.environ, "TZ": "UTC"},
        )
        try:
            yield Browser(context)
        finally:
            context.close()
