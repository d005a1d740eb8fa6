"""A toy that builds on another run, as fusion does: no tokenizer of its own; it reads the base
run's config.json for it and then the train tokens of that tokenizer."""

import json
from pathlib import Path

from vibe_research.lm.events import emit
from vibe_research.lm.experiment import parse_args
from vibe_research.lm.tokens import open_split

CONFIG = {
    "base_run": "",  # run folder of the model this one builds on (required)
}


def main() -> None:
    experiment = parse_args(CONFIG)
    base = json.loads((Path(experiment.config["base_run"]) / "config.json").read_text())
    split = open_split("train", base["tokenizer"])
    emit(
        "done",
        params=0,
        steps=0,
        tokens=len(split.tokens),
        device="cpu",
        dtype="fp32",
        elapsed_s=0.0,
    )


if __name__ == "__main__":
    main()
