"""A tiny experiment that follows the ModelAPI contract: a smoothed bigram model over the train
token cache, trained in "steps" so it emits real progress events. Used by the runner tests.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vibe_research.lm.events import emit
from vibe_research.lm.experiment import parse_args
from vibe_research.lm.tokens import open_split

if TYPE_CHECKING:
    import torch

CONFIG = {
    "tokenizer": "bytes",  # token cache spec
    "steps": 5,  # chunks of the train stream counted, one event each
    "step_sleep_s": 0.05,  # pause per step, so a run lasts long enough to watch
    "nan_at": -1,  # step at which the reported loss becomes NaN (-1: never)
    "base_run": "",  # another run folder to read first, as fusion reads its base run ("" = none)
}


class Bigram:
    def __init__(self, counts: np.ndarray, tokenizer: str) -> None:
        import torch  # only the evaluator needs it; training stays light

        table = torch.from_numpy(counts + 1.0).float()
        self.logp = torch.log_softmax(table.log(), dim=-1)  # [V, V]: log p(next | current)
        self.vocab_size, self.tokenizer, self.context_length = counts.shape[0], tokenizer, 1024

    def logprobs(self, tokens: "torch.Tensor") -> "torch.Tensor":
        return self.logp[tokens]


def load_model(run_dir: Path) -> Bigram:
    saved = np.load(run_dir / "bigram.npz")
    return Bigram(saved["counts"], str(saved["tokenizer"]))


def main() -> None:
    experiment = parse_args(CONFIG)
    config = experiment.config
    if config["base_run"]:
        (Path(config["base_run"]) / "bigram.npz").read_bytes()
    split = open_split("train", config["tokenizer"])
    stream = np.asarray(split.tokens, dtype=np.int64)
    vocab = split.manifest.vocab_size
    emit("start", device="cpu", dtype="fp32", params=vocab * vocab, config=config)
    counts = np.zeros((vocab, vocab), dtype=np.float64)
    chunks = np.array_split(np.arange(len(stream) - 1), config["steps"])
    began = time.perf_counter()
    for step, chunk in enumerate(chunks, start=1):
        np.add.at(counts, (stream[chunk], stream[chunk + 1]), 1)
        probs = (counts + 1) / (counts + 1).sum(axis=1, keepdims=True)
        loss = float(-np.log(probs[stream[chunk], stream[chunk + 1]]).mean())
        loss = float("nan") if step == config["nan_at"] else loss
        elapsed = time.perf_counter() - began
        tokens = int(chunks[step - 1][-1]) + 1
        emit(
            "step",
            step=step,
            loss=loss,
            tokens=tokens,
            tokens_per_s=tokens / max(elapsed, 1e-9),
            elapsed_s=elapsed,
        )
        time.sleep(config["step_sleep_s"])
        if experiment.stop_requested():
            break
    np.savez(experiment.out / "bigram.npz", counts=counts, tokenizer=config["tokenizer"])
    emit(
        "done",
        params=vocab * vocab,
        steps=step,
        tokens=len(stream) - 1,
        device="cpu",
        dtype="fp32",
        elapsed_s=time.perf_counter() - began,
    )


if __name__ == "__main__":
    main()
