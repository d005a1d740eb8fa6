"""Reference models that prove the evaluator, and an experiment entry that builds them.

- uniform: p(v) = 1/V, so its bits per byte is exactly log2(V) x tokens / bytes.
- unigram: add-one smoothed token frequencies of the train stream, p(v) = (c_v + 1) / (N + V),
  whose bits per byte has a closed form the tests check the evaluator against.
- peeking: puts most mass on the token that comes next, which it reads from its input; not causal,
  so the evaluator must reject it.

    python -m vibe_research.lm.reference --out RUN_DIR --set kind=unigram --set tokenizer=bpe:4096
    python -m vibe_research.lm.evaluate --entry vibe_research/lm/reference.py --run-dir RUN_DIR
"""

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vibe_research.lm import atomic
from vibe_research.lm.errors import UserError
from vibe_research.lm.tokenizer import load_tokenizer

if TYPE_CHECKING:
    import torch

DEFAULTS = {
    "kind": "unigram",  # uniform | unigram | peeking
    "tokenizer": "bpe:4096",  # spec of the token cache to fit on
    "context_length": 256,  # tokens; these models ignore context, the evaluator windows by it
}
KINDS = ("uniform", "unigram", "peeking")
MODEL_FILE = "reference.json"  # {"kind", "tokenizer", "vocab_size", "context_length"}
COUNTS_FILE = "unigram_counts.npy"
PEEK_MASS = 0.9  # probability the peeking model puts on the token it reads ahead


class UniformModel:
    def __init__(self, tokenizer: str, vocab_size: int, context_length: int) -> None:
        self.tokenizer, self.vocab_size, self.context_length = tokenizer, vocab_size, context_length

    def logprobs(self, tokens: "torch.Tensor") -> "torch.Tensor":
        import torch

        row = torch.full((self.vocab_size,), -math.log(self.vocab_size), dtype=torch.float64)
        return row.expand(*tokens.shape, self.vocab_size)  # a view: no [B, T, V] allocation


class UnigramModel:
    def __init__(self, tokenizer: str, counts: np.ndarray, context_length: int) -> None:
        import torch

        self.tokenizer, self.vocab_size, self.context_length = (
            tokenizer,
            len(counts),
            context_length,
        )
        self.log_probs = torch.from_numpy(unigram_log_probs(counts))  # float64[V]

    def logprobs(self, tokens: "torch.Tensor") -> "torch.Tensor":
        return self.log_probs.expand(*tokens.shape, self.vocab_size)


class PeekingModel(UniformModel):
    def logprobs(self, tokens: "torch.Tensor") -> "torch.Tensor":
        import torch

        rest = (1 - PEEK_MASS) / (self.vocab_size - 1)
        probs = torch.full((*tokens.shape, self.vocab_size), rest, dtype=torch.float64)
        # Row t puts PEEK_MASS on tokens[t + 1]: exactly the cheat the causality check exists for.
        probs[:, :-1].scatter_(-1, tokens[:, 1:].unsqueeze(-1), PEEK_MASS)
        probs[:, -1] = 1 / self.vocab_size
        return probs.log()


def unigram_counts(train: np.ndarray, vocab_size: int) -> np.ndarray:
    """int64[V]: how often each token is a target in the train stream (every token after the first)."""
    return np.bincount(np.asarray(train[1:], dtype=np.int64), minlength=vocab_size)


def unigram_log_probs(counts: np.ndarray) -> np.ndarray:
    """float64[V]: ln((c_v + 1) / (N + V))."""
    return np.log((counts + 1.0) / (counts.sum() + len(counts)))


def load_model(run_dir: Path) -> UniformModel | UnigramModel:
    """The ModelAPI entry: rebuild the reference model a run folder describes."""
    saved = json.loads((run_dir / MODEL_FILE).read_text(encoding="utf-8"))
    spec, context = saved["tokenizer"], saved["context_length"]
    if saved["kind"] == "unigram":
        return UnigramModel(spec, np.load(run_dir / COUNTS_FILE), context)
    model_class = PeekingModel if saved["kind"] == "peeking" else UniformModel
    return model_class(spec, saved["vocab_size"], context)


def main() -> None:
    from vibe_research.lm.events import emit
    from vibe_research.lm.experiment import fail, parse_args
    from vibe_research.lm.tokens import open_split

    experiment = parse_args(DEFAULTS)
    config = experiment.config
    if config["kind"] not in KINDS:
        fail(f"--set kind={config['kind']}: use one of {', '.join(KINDS)}")
    emit("start", device="cpu", dtype="float64", params=0, config=config)
    vocab_size, tokens = load_tokenizer(str(config["tokenizer"])).vocab_size, 0
    if config["kind"] == "unigram":
        train = open_split("train", str(config["tokenizer"]))
        tokens = train.manifest.tokens
        with atomic.atomic_path(experiment.out / COUNTS_FILE) as temp, temp.open("wb") as handle:
            np.save(handle, unigram_counts(train.tokens, vocab_size))
    atomic.write_text(experiment.out / MODEL_FILE, json.dumps(config | {"vocab_size": vocab_size}))
    params = vocab_size if config["kind"] == "unigram" else 0
    emit(
        "done",
        params=params,
        steps=1,
        tokens=tokens,
        device="cpu",
        dtype="float64",
        elapsed_s=experiment.elapsed(),
    )


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
