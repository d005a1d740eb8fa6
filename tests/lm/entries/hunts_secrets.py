"""Looks for a secret everywhere it might be: the environment, the files named in run_dir/config.json
"targets" (HOME's keys, the workspace's .env, notes and settings), its own HOME; and tries to write
a file in /tmp. It refuses to load, naming what it got, if any of that works."""

import json
import os
from pathlib import Path

from bigram import Bigram


def readable(path: Path) -> list[str]:
    found = []
    paths = [path] if path.is_file() else list(path.rglob("*")) if path.is_dir() else []
    for file in paths:
        try:
            found.append(file.read_text(errors="replace"))
        except OSError:
            continue
    return found


def load_model(run_dir):
    config = json.loads((Path(run_dir) / "config.json").read_text())
    secret, got = config["secret"], []
    got += [f"env {name}" for name, value in os.environ.items() if secret in value]
    for target in [*config["targets"], str(Path.home())]:
        if any(secret in text for text in readable(Path(target))):
            got.append(target)
    try:
        Path(config["plant"]).write_text("planted")
        got.append(f"wrote {config['plant']}")
    except OSError:
        pass
    if got:
        raise RuntimeError(f"got at: {', '.join(got)}")
    return Bigram()
