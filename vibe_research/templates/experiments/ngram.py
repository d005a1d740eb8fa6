"""Kneser-Ney n-gram language model: counted from the train tokens in seconds, no training loop.

    python experiments/ngram.py --out RUN_DIR --seed 0 --budget 300 [--set order=5 ...]

Counts the train token cache with vibe_research.lm.ngram (interpolated modified Kneser-Ney,
`<|endoftext|>` kept as a token that ends one story and opens the next), saves RUN_DIR/ngram.npz
and reports JSON-line events. The budget includes counting: a build that overruns it fails.
Building is deterministic, so --seed changes nothing. `load_model(run_dir)` serves the model to
the evaluator (the ModelAPI contract in DESIGN.md).
"""

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from vibe_research.lm import atomic
from vibe_research.lm.errors import UserError, validation_error_line
from vibe_research.lm.events import emit
from vibe_research.lm.experiment import parse_args
from vibe_research.lm.ngram import MAX_ORDER, KneserNey
from vibe_research.lm.tokens import open_split

if TYPE_CHECKING:
    import torch

CONFIG = {
    "tokenizer": "bpe:4096",  # token cache spec: bpe:N, gpt2 or bytes (`vibe-research data prepare`)
    "order": 4,  # n-gram order, 1 to 6 (tokens of context + 1)
    "discount": "modified",  # modified (D1, D2, D3+ per order from counts of counts) or a fixed D in (0, 1), e.g. 0.75
    "interpolate": True,  # interpolated Kneser-Ney; false: backoff Kneser-Ney
    "prune": 0,  # contexts seen at most this many times keep no n-grams of their own (0 = keep all)
    "context_length": 1024,  # tokens per logprobs() row the evaluator may send (only the last order-1 are used)
}
MODEL_FILE = "ngram.npz"
SETTINGS_FILE = "ngram.json"


class NgramRun(BaseModel):
    """RUN_DIR/ngram.json: what the evaluator needs beside the counts."""

    model_config = ConfigDict(extra="forbid")
    tokenizer: str
    context_length: int


class NgramLanguageModel:
    """The ModelAPI face of a KneserNey model: log-probabilities over the whole vocabulary, causal."""

    def __init__(self, model: KneserNey, tokenizer: str, context_length: int) -> None:
        self.model, self.tokenizer, self.context_length = model, tokenizer, context_length
        self.vocab_size = model.vocab_size

    def logprobs(self, tokens: "torch.Tensor") -> "torch.Tensor":
        """tokens LongTensor[B, T] -> float32 [B, T, V] on the tokens' device; row starts are stream starts."""
        import torch  # here, so building the counts does not pay torch's import time

        probs = self.model.next_token_distributions(tokens.cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(probs).log_().to(tokens.device)


def discount_setting(text: str) -> str | float:
    """The `discount` knob as KneserNey.build takes it: "modified" or a float."""
    if text == "modified":
        return text
    try:
        return float(text)
    except ValueError:
        raise UserError(
            f"--set discount={text}: use modified or a fixed D in (0, 1), e.g. 0.75"
        ) from None


def build(config: dict, tokens: np.ndarray, vocab_size: int, eot: int) -> KneserNey:
    if not 1 <= config["order"] <= MAX_ORDER:
        raise UserError(f"--set order={config['order']}: use an order from 1 to {MAX_ORDER}")
    if config["context_length"] < 1:
        raise UserError(
            f"--set context_length={config['context_length']}: must be a positive number of tokens"
        )
    return KneserNey.build(
        tokens,
        config["order"],
        vocab_size,
        discount_setting(config["discount"]),
        config["prune"],
        eot=eot,
        interpolate=config["interpolate"],
    )


def load_model(run_dir: Path) -> NgramLanguageModel:
    """The n-gram model saved in run_dir."""
    run_dir = Path(run_dir)
    settings_file = run_dir / SETTINGS_FILE
    if not settings_file.is_file():
        raise UserError(
            f"{settings_file} is missing: build first with `python experiments/ngram.py --out {run_dir}`"
        )
    try:
        run = NgramRun.model_validate_json(settings_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise UserError(
            validation_error_line(str(settings_file), exc) + "; rebuild the run"
        ) from exc
    return NgramLanguageModel(
        KneserNey.load(run_dir / MODEL_FILE), run.tokenizer, run.context_length
    )


def main() -> None:
    experiment = parse_args(CONFIG)
    config = experiment.config
    try:
        split = open_split("train", config["tokenizer"])
        started = time.perf_counter()
        model = build(config, split.tokens, split.manifest.vocab_size, split.manifest.eot)
        build_s = time.perf_counter() - started
        if experiment.deadline() < 0:
            raise UserError(
                f"building took {build_s:.1f} s and the run is over its {experiment.budget:g} s budget; "
                "lower the order or raise prune"
            )
        model.save(experiment.out / MODEL_FILE)
        run = NgramRun(tokenizer=config["tokenizer"], context_length=config["context_length"])
        atomic.write_text(experiment.out / SETTINGS_FILE, run.model_dump_json(indent=2) + "\n")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    ngrams = sum(model.ngram_counts())
    emit("start", device="cpu", dtype="float64", params=ngrams, config=config)
    emit(
        "done",
        params=ngrams,
        steps=0,
        tokens=len(split.tokens),
        device="cpu",
        dtype="float64",
        elapsed_s=round(experiment.elapsed(), 2),
        build_s=round(build_s, 2),
        ngrams=model.ngram_counts(),
    )


if __name__ == "__main__":
    main()
