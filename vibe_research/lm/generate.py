"""Sampling stories from any LanguageModel, and the fixed story beginnings every evaluation uses.

    python -m vibe_research.lm.generate --entry FILE --run-dir DIR --prompt TEXT [--temperature T]
        [--top-k K] [--seed N] [--max-tokens N]

prints one JSON `Sample`. Sampling needs only `logprobs`: each step scores the last
context_length tokens of every unfinished story (right-padded, which a causal model ignores).
"""

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from vibe_research.lm.api import LanguageModel
from vibe_research.lm.entry import ModelRejected, call_logprobs, load_model
from vibe_research.lm.errors import UserError
from vibe_research.lm.tokenizer import Tokenizer, load_tokenizer

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Written for this project in the TinyStories style; fixed order. Beginning i is always sampled
# with seed SAMPLE_SEED + i, so samples of two models differ only by the model.
STORY_BEGINNINGS: tuple[str, ...] = (
    "Once upon a time, there was a little girl named Lily. She loved to",
    "Tom had a red ball. One day, he kicked it very high and",
    "In a small house near the woods lived an old dog named Rex.",
    "Mia and her mom went to the store to buy",
    "One sunny day, a little bird wanted to fly to the top of the tall tree.",
    "Ben found a shiny key under his bed. He wondered",
    "There was a big, friendly bear who lived in a cave. Every morning,",
    "Sara was sad because it was raining and she could not go outside.",
    "Once upon a time, a small boat sailed on the blue sea.",
    "Max and Sue were playing in the park when they saw",
    "The little cat was hungry. She looked in the kitchen and",
    "Anna wanted to bake a cake for her dad's birthday.",
    "A tiny frog sat on a leaf in the pond. He was bored, so",
    "Tim did not want to share his new toy truck with his sister.",
    "One day, a kind old man gave Lucy a box with a bow on it.",
    "The sun was hot, and the flowers in the garden were very thirsty.",
    "Sam was scared of the dark. At night, he",
    "Once there was a bunny who could not hop very fast.",
    "Emma and her friend Jack built a tall tower out of blocks.",
    "A little girl named Zoe found a lost puppy in the street.",
    "Every day, the fox walked past the farm and looked at the hens.",
    "Lily's grandma had a big garden with many vegetables.",
    "The wind blew hard, and Ben's kite got stuck in a tree.",
    "Once upon a time, in a land full of candy, there lived a happy little dragon.",
)
SAMPLE_SEED = 1000
LOGIT_ELEMENTS = 1 << 25  # at most B*T*V log-probabilities in flight per call (128 MB in float32)


class Sample(BaseModel):
    prompt: str
    seed: int
    text: str  # the prompt and its continuation
    continuation: str
    tokens: int  # tokens generated, the end-of-story token included
    finished: bool  # ended with the end-of-story token rather than at max_tokens


def sample(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompts: list[str],
    seeds: list[int],
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    max_tokens: int = 256,
) -> list[Sample]:
    """Continue each prompt (after an end-of-story token) until eot or `max_tokens`; seed i drives prompt i."""
    import torch

    if temperature < 0 or (top_k is not None and top_k < 1) or max_tokens < 1:
        raise UserError("sampling needs temperature >= 0, top-k >= 1 and max-tokens >= 1")
    sequences = [[tokenizer.eot, *tokenizer.encode(prompt)] for prompt in prompts]
    prompt_lengths = [len(sequence) for sequence in sequences]
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    finished = [False] * len(prompts)
    for _ in range(max_tokens):
        active = [i for i, done in enumerate(finished) if not done]
        if not active:
            break
        for group in _groups(active, model.context_length, model.vocab_size):
            last = _last_logprobs(
                model, [sequences[i][-model.context_length :] for i in group], tokenizer.eot
            )
            for row, i in enumerate(group):
                token = _pick(last[row], generators[i], temperature, top_k)
                sequences[i].append(token)
                finished[i] = token == tokenizer.eot
    samples = []
    for prompt, seed, sequence, start, done in zip(
        prompts, seeds, sequences, prompt_lengths, finished, strict=False
    ):
        generated = sequence[start:]
        continuation = tokenizer.decode(generated[:-1] if done else generated)
        samples.append(
            Sample(
                prompt=prompt,
                seed=seed,
                text=prompt + continuation,
                continuation=continuation,
                tokens=len(generated),
                finished=done,
            )
        )
    return samples


def story_samples(
    model: LanguageModel, tokenizer: Tokenizer, count: int, max_tokens: int = 256
) -> list[Sample]:
    """The first `count` fixed story beginnings, each with its fixed seed, at temperature 1."""
    prompts = list(STORY_BEGINNINGS[:count])
    return sample(
        model,
        tokenizer,
        prompts,
        [SAMPLE_SEED + i for i in range(len(prompts))],
        max_tokens=max_tokens,
    )


def _groups(items: list[int], context_length: int, vocab_size: int) -> Iterator[list[int]]:
    size = max(1, LOGIT_ELEMENTS // (context_length * vocab_size))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _last_logprobs(model: LanguageModel, windows: list[list[int]], pad: int) -> "torch.Tensor":
    """FloatTensor[B, V]: the next-token log-probabilities after each window."""
    import torch

    lengths = torch.tensor([len(window) for window in windows])
    batch = torch.full((len(windows), int(lengths.max())), pad, dtype=torch.long)
    for row, window in enumerate(windows):
        batch[row, : len(window)] = torch.tensor(window)
    logprobs = call_logprobs(model, batch)
    return logprobs[torch.arange(len(windows)), lengths - 1].float()


def _pick(
    logprobs: "torch.Tensor", generator: "torch.Generator", temperature: float, top_k: int | None
) -> int:
    import torch

    if temperature == 0:
        return int(logprobs.argmax())
    logits = logprobs / temperature
    if top_k is not None and top_k < logits.numel():
        threshold = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(
        prog="python -m vibe_research.lm.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--entry", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        model = load_model(args.entry, args.run_dir)
        tokenizer = load_tokenizer(model.tokenizer, args.cache_dir)
        [result] = sample(
            model,
            tokenizer,
            [args.prompt],
            [args.seed],
            temperature=args.temperature,
            top_k=args.top_k,
            max_tokens=args.max_tokens,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModelRejected as exc:
        print(f"model rejected: {exc}", file=sys.stderr)
        return 3
    print(result.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
