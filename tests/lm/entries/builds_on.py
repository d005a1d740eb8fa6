"""Builds on another run, as fusion does: load_model reads the base run named in its config.json
(run_dir/config.json "base_run") and checks it holds the base model's file."""

import json
from pathlib import Path

from bigram import Bigram


def load_model(run_dir):
    base = Path(json.loads((Path(run_dir) / "config.json").read_text())["base_run"])
    (base / "model.txt").read_text()
    return Bigram()
