"""The command line every experiment script shares (CONTRACTS.md, "Experiments").

    python experiments/train.py --out RUN_DIR --seed N --budget SECONDS [--set key=value ...] [--describe]

Knobs live in one dict of defaults at the top of the script; `--set` overrides them, typed by the
default's type, rejecting unknown keys (as nanoGPT's configurator does). The budget is measured
on the whole process's wall clock, from the moment the OS started it, so interpreter start-up
and imports count against it. SIGTERM asks the run to stop early: `stop_requested()` turns true,
and a trainer ends its loop at the next step and saves as it would at the deadline (the smoke
run stops this way after its first step).
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from vibe_research.lm import atomic

Value = bool | int | float | str
_IMPORTED = time.monotonic()
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_STOP = threading.Event()


@dataclass(frozen=True)
class Experiment:
    out: Path
    seed: int
    budget: float  # seconds of wall clock for the whole process
    config: dict[str, Value]
    started: float  # time.monotonic() at process start

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def deadline(self) -> float:
        """Seconds left of the budget, counted from process start (negative once it has run out)."""
        return self.budget - self.elapsed()

    def stop_requested(self) -> bool:
        """True once the process got SIGTERM: stop at the next step and save what there is."""
        return _STOP.is_set()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    """One line on stderr and exit code 2: the contract for bad experiment arguments."""
    sys.stderr.write(f"{Path(sys.argv[0]).name}: error: {message}\n")
    sys.exit(2)


def parse_args(defaults: dict[str, Value], argv: list[str] | None = None) -> Experiment:
    """Parse the experiment command line, resolve the config, and save it to RUN_DIR/config.json."""
    for key, value in defaults.items():
        if not isinstance(value, Value):
            raise TypeError(f"default {key}={value!r}: knobs must be bool, int, float or str")
    parser = _Parser(description="Train one model within a wall-clock budget.")
    parser.add_argument(
        "--out", type=Path, help="run folder to write the model and config.json into"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole process")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument(
        "--describe", action="store_true", help="print the resolved config as JSON and exit"
    )
    args = parser.parse_args(argv)
    config = resolve(defaults, args.overrides)
    if args.describe:
        print(json.dumps(config, indent=2))
        sys.exit(0)
    if args.out is None:
        fail("--out RUN_DIR is required")
    if args.budget <= 0:
        fail(f"--budget must be positive seconds, got {args.budget:g}")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.out / "config.json", json.dumps(config, indent=2) + "\n")
    signal.signal(signal.SIGTERM, lambda signum, frame: _STOP.set())
    return Experiment(args.out, args.seed, args.budget, config, time.monotonic() - process_age())


def resolve(defaults: dict[str, Value], overrides: list[str]) -> dict[str, Value]:
    """`defaults` with each `key=value` applied, printing each override to stderr."""
    config = dict(defaults)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            fail(f"--set {item!r}: expected key=value")
        if key not in defaults:
            fail(f"--set {key}: unknown key; known keys: {', '.join(sorted(defaults))}")
        config[key] = cast(key, text, defaults[key])
        sys.stderr.write(f"override: {key} = {config[key]!r} (default {defaults[key]!r})\n")
    return config


def cast(key: str, text: str, default: Value) -> Value:
    """`text` as the type of `default`; bad values exit 2 with one line."""
    kind = type(default)
    if kind is bool:
        if text.lower() not in TRUE | FALSE:
            fail(f"--set {key}={text}: expected a bool (true/false)")
        return text.lower() in TRUE
    try:
        return kind(text)
    except ValueError:
        fail(f"--set {key}={text}: expected {kind.__name__} like the default {default!r}")


def process_age() -> float:
    """Seconds since the OS started this process: /proc/self/stat where it exists, else since import."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return time.monotonic() - _IMPORTED
    # Fields after the ")" that closes the command name start at field 3; starttime is field 22.
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
