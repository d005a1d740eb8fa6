"""Writes the evaluator's result itself: a flattering eval.json in its run folder, before it
hands over an honest model."""

import json
from pathlib import Path

from bigram import Bigram

FAKE = {"ok": True, "bpb": 0.01, "entry": "-", "run_dir": "-", "lm_fingerprint": "-"}


def load_model(run_dir):
    (Path(run_dir) / "eval.json").write_text(json.dumps(FAKE))
    return Bigram()
