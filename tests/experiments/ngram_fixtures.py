"""Shared by the n-gram, fusion and distillation tests: a real token cache and experiment runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import vibe_research
from vibe_research.lm.checks import choose, recheck
from vibe_research.lm.scoring import RowReader, score_windows, story_windows
from vibe_research.lm.sessions import LocalModel

TEMPLATES = Path(vibe_research.__file__).parent / "templates" / "experiments"


def few_valid_stories(tinystories: Path, folder: Path, count: int) -> Path:
    """The first `count` validation stories as a story file of their own."""
    text = (tinystories / "valid.txt").read_text(encoding="utf-8")
    stories = [s.strip() for s in text.split("<|endoftext|>") if s.strip()][:count]
    path = folder / "valid-few.txt"
    path.write_text("".join(f"{story}\n<|endoftext|>\n" for story in stories), encoding="utf-8")
    return path


def run_experiment(
    entry: str, out: Path, cache: Path, budget: float, *overrides: str
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run templates/experiments/<entry> as a user would; return the process and its events."""
    command = [sys.executable, str(TEMPLATES / entry), "--out", str(out), "--budget", str(budget)]
    for override in overrides:
        command += ["--set", override]
    env = os.environ | {"VIBE_CACHE_DIR": str(cache)}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=budget + 120, check=False
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"event"')]
    return done, events


def contract_in_process(model: object, stream: np.ndarray) -> tuple[float, float]:
    """The evaluator's causality and normalisation checks on a model already in this process
    (its parts, say), over `stream`: the largest causal change (nats) and normalisation error.
    Without the model process, memory between calls goes unchecked: these parts keep none."""
    source, reader, eot = LocalModel(model), RowReader(), int(stream[0])
    windows = story_windows(stream, eot, model.context_length)
    with source.session() as session:
        picked = score_windows(session, stream, windows, eot, reader)
    chosen = choose(windows, stream, eot, len(windows), np.random.default_rng(0))
    with source.session() as session:
        found = recheck(session, stream, chosen, picked, eot, reader)
    return found.max_change, reader.max_error
