"""remembers.py's cheat, with its memory kept in files so that it outlives a session: after
every call it writes what it remembers to every place it can write (its TMPDIR, HOME, the
folder above them, /dev/shm, and run_dir/config.json's "memory" path) and loads it back from
any of them in load_model."""

import json
import os
import pickle
from pathlib import Path

from remembers import Remembering


def places(run_dir: Path) -> list[Path]:
    config = json.loads((run_dir / "config.json").read_text())
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    return [
        Path(config["memory"]),
        tmp / "memory.pkl",
        tmp.parent / "memory.pkl",
        Path.home() / "memory.pkl",
        Path("/dev/shm") / f"vibe-memory-{run_dir.name}.pkl",
    ]


class Persisting(Remembering):
    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.places = places(run_dir)
        for place in self.places:
            try:
                self.followers.update(pickle.loads(place.read_bytes()))
            except OSError:
                continue

    def logprobs(self, tokens):
        out = super().logprobs(tokens)
        data = pickle.dumps(self.followers)
        for place in self.places:
            try:
                place.write_bytes(data)
            except OSError:
                continue
        return out


def load_model(run_dir):
    return Persisting(Path(run_dir))
