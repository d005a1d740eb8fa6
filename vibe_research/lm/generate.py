"""Sampling stories from any model, and the fixed story beginnings every evaluation uses.

    python -m vibe_research.lm.generate --entry FILE --run-dir DIR --prompt TEXT [--temperature T]
        [--top-k K] [--seed N] [--max-tokens N] [--cache-dir DIR] [--model-fd N] [--timeout S]

prints one JSON `Sample`. The model process only gives distributions; every token is chosen
here, with this side's seeded generator. Each sample is one session (a fresh process that keeps
state for that sample alone). A model with `decoder()` is decoded incrementally, after a probe
shows its steps give what `logprobs` gives for the same tokens; otherwise each step asks
`logprobs` for the last context_length tokens. Either way a few steps of every sample, chosen
with a seed the model cannot know, are asked again with `logprobs` in a fresh session and must
give the same distribution (total variation at most STEP_TOLERANCE).
"""

import argparse
import logging
import math
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from vibe_research.lm.entry import ModelRejected
from vibe_research.lm.errors import UserError
from vibe_research.lm.scoring import RowReader
from vibe_research.lm.sessions import LOGIT_ELEMENTS, ModelProcess, ModelSource, Session
from vibe_research.lm.tokenizer import Tokenizer, load_tokenizer

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
SAMPLE_SEED = 1000  # away from the training seeds 0, 1, 2, ... so no run samples with its own
STEP_TOLERANCE = 1e-3  # total variation allowed between a step's distribution and logprobs'
SPOT_STEPS = 4  # steps of each sample asked again with logprobs in a fresh session
PROBE_TOKENS = 32  # tokens the decoder probe decodes: a quarter at once, then one at a time


class Sample(BaseModel):
    prompt: str
    seed: int
    text: str  # the prompt and its continuation
    continuation: str
    tokens: int  # tokens generated, the end-of-story token included
    finished: bool  # ended with the end-of-story token rather than at max_tokens


class SamplingChecks(BaseModel):
    incremental: bool  # the samples were decoded with the model's decoder()
    probe_rows: int = 0  # decoder steps compared with logprobs before sampling
    steps_checked: int = 0  # sampled steps asked again with logprobs in a fresh session
    max_step_change: float = 0.0  # largest total variation between the two


@dataclass(frozen=True)
class Sampling:
    samples: list[Sample]
    checks: SamplingChecks


@dataclass(frozen=True)
class Spot:
    window: list[int]  # the tokens the step saw
    distribution: np.ndarray  # float64 [V]: what the sampling session gave for them


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance between two distributions given as log-probabilities [V]; NaN counts
    as the largest possible."""
    distance = 0.5 * float(np.abs(np.exp(a) - np.exp(b)).sum())
    return 1.0 if math.isnan(distance) else distance


def check_settings(temperature: float, top_k: int | None, max_tokens: int) -> None:
    if temperature < 0 or (top_k is not None and top_k < 1) or max_tokens < 1:
        raise UserError("sampling needs temperature >= 0, top-k >= 1 and max-tokens >= 1")


def sample(
    source: ModelSource,
    tokenizer: Tokenizer,
    prompts: list[str],
    seeds: list[int],
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    max_tokens: int = 256,
    checks_rng: np.random.Generator | None = None,
    probe: list[int] | None = None,
) -> Sampling:
    """Continue each prompt (after an end-of-story token) until eot or `max_tokens`; seed i
    drives prompt i. `checks_rng` picks the spot-checked steps (default: a fresh random seed);
    `probe` is the token sequence the decoder is first checked on (default: the first prompt)."""
    check_settings(temperature, top_k, max_tokens)
    rng = checks_rng or np.random.default_rng(secrets.randbits(64))
    reader = RowReader()
    beginnings = [[tokenizer.eot, *tokenizer.encode(prompt)] for prompt in prompts]
    info = source.info
    if info is None:
        with source.session() as session:
            info = session.info
    checks = SamplingChecks(incremental=info.decoder)
    if checks.incremental:
        with source.session() as session:
            checks.probe_rows = probe_decoder(session, probe or beginnings[0], reader)
    samples: list[Sample] = []
    spots: list[Spot] = []
    for prompt, seed, sequence in zip(prompts, seeds, beginnings, strict=True):
        with source.session() as session:
            story = Continuation(session, reader, checks.incremental, sequence, spots)
            samples.append(story.run(prompt, seed, tokenizer, temperature, top_k, max_tokens, rng))
    checks.steps_checked, checks.max_step_change = spot_check(source, spots, reader)
    return Sampling(samples, checks)


class Continuation:
    """One sample in its own session: the model gives distributions, this side picks tokens."""

    def __init__(
        self,
        session: Session,
        reader: RowReader,
        incremental: bool,
        beginning: list[int],
        spots: list[Spot],
    ) -> None:
        self.session, self.reader, self.incremental = session, reader, incremental
        self.sequence, self.spots = list(beginning), spots
        self.context = session.info.context_length

    def next_distribution(self, fresh: bool) -> np.ndarray:
        """float64 [V] after the last context_length tokens; `fresh` when they are not the
        decoder's sequence plus one token (the first step, and every step once the window slides)."""
        window = np.array(self.sequence[-self.context :], dtype=np.int64)
        if not self.incremental:
            answer = self.session.logprobs(window[None], np.array([len(window)]), last_only=True)
        elif fresh:
            answer = self.session.decode(window, reset=True)
        else:
            answer = self.session.decode(window[-1:], reset=False)
        return self.reader.distribution(answer.rows[0][-1])

    def run(
        self,
        prompt: str,
        seed: int,
        tokenizer: Tokenizer,
        temperature: float,
        top_k: int | None,
        max_tokens: int,
        checks_rng: np.random.Generator,
    ) -> Sample:
        """Sample until eot or max_tokens; SPOT_STEPS of the steps taken, drawn uniformly with
        `checks_rng` (a reservoir: which ones is known only once the sample is done), go to the
        spot checks."""
        generator = np.random.default_rng(seed)
        start, finished = len(self.sequence), False
        kept: list[Spot] = []
        for step in range(max_tokens):
            distribution = self.next_distribution(step == 0 or len(self.sequence) > self.context)
            if len(kept) < SPOT_STEPS:
                kept.append(Spot(self.sequence[-self.context :], distribution))
            elif (slot := int(checks_rng.integers(step + 1))) < SPOT_STEPS:
                kept[slot] = Spot(self.sequence[-self.context :], distribution)
            token = pick(distribution, generator, temperature, top_k)
            self.sequence.append(token)
            if token == tokenizer.eot:
                finished = True
                break
        self.spots.extend(kept)
        generated = self.sequence[start:]
        continuation = tokenizer.decode(generated[:-1] if finished else generated)
        return Sample(
            prompt=prompt,
            seed=seed,
            text=prompt + continuation,
            continuation=continuation,
            tokens=len(generated),
            finished=finished,
        )


def pick(
    logprobs: np.ndarray, generator: np.random.Generator, temperature: float, top_k: int | None
) -> int:
    """A token drawn from softmax(logprobs / temperature), among the top_k likeliest if given;
    the likeliest at temperature 0."""
    if temperature == 0:
        return int(np.argmax(logprobs))
    logits = logprobs / temperature
    if top_k is not None and top_k < len(logits):
        threshold = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < threshold, -np.inf, logits)
    cumulative = np.cumsum(np.exp(logits - logits.max()))
    # the first token whose cumulative mass passes a uniform draw: never one of probability 0
    drawn = np.searchsorted(cumulative, generator.random() * cumulative[-1], side="right")
    return int(min(drawn, len(cumulative) - 1))


def probe_decoder(session: Session, probe: list[int], reader: RowReader) -> int:
    """Decode `probe` (cut to the context) in `session`, a quarter at once and then token by
    token, and compare every row with logprobs of the whole; the rows compared."""
    tokens = np.array(probe[: min(session.info.context_length, PROBE_TOKENS)], dtype=np.int64)
    answer = session.logprobs(tokens[None], np.array([len(tokens)]))
    full = [reader.distribution(row) for row in answer.rows[0]]
    split = max(1, len(tokens) // 4)
    stepped = [reader.distribution(row) for row in session.decode(tokens[:split], True).rows[0]]
    for token in tokens[split:]:
        stepped.append(reader.distribution(session.decode(token[None], False).rows[0][0]))
    for position, row in enumerate(stepped):
        change = total_variation(row, full[position])
        if change > STEP_TOLERANCE:
            raise ModelRejected(
                f"decoder().step disagrees with logprobs at position {position} of the probe: "
                f"total variation {change:.3g} (allowed {STEP_TOLERANCE:g}); fix the model's "
                "incremental decoding or remove decoder()"
            )
    return len(stepped)


def spot_check(source: ModelSource, spots: list[Spot], reader: RowReader) -> tuple[int, float]:
    """Ask logprobs, in one fresh session, for the windows of the spot-checked steps; compare."""
    if not spots:
        return 0, 0.0
    largest = 0.0
    with source.session() as session:
        vocab, context = session.info.vocab_size, session.info.context_length
        per_call = max(1, LOGIT_ELEMENTS // (context * vocab))
        for first in range(0, len(spots), per_call):
            group = spots[first : first + per_call]
            width = max(len(spot.window) for spot in group)
            tokens = np.zeros((len(group), width), dtype=np.int64)
            for row, spot in enumerate(group):
                tokens[row, : len(spot.window)] = spot.window
            lengths = np.array([len(spot.window) for spot in group])
            answer = session.logprobs(tokens, lengths, last_only=True)
            for spot, block in zip(group, answer.rows, strict=True):
                change = total_variation(spot.distribution, reader.distribution(block[0]))
                largest = max(largest, change)
                if change > STEP_TOLERANCE:
                    raise ModelRejected(
                        f"a sampled step's distribution differs from logprobs of the same "
                        f"{len(spot.window)} tokens by {change:.3g} (total variation, allowed "
                        f"{STEP_TOLERANCE:g}): the samples must come from the model that is scored"
                    )
    return len(spots), largest


def story_samples(
    source: ModelSource,
    tokenizer: Tokenizer,
    count: int,
    max_tokens: int = 256,
    checks_rng: np.random.Generator | None = None,
    probe: list[int] | None = None,
) -> Sampling:
    """The first `count` fixed story beginnings, each with its fixed seed, at temperature 1."""
    prompts = list(STORY_BEGINNINGS[:count])
    return sample(
        source,
        tokenizer,
        prompts,
        [SAMPLE_SEED + i for i in range(len(prompts))],
        max_tokens=max_tokens,
        checks_rng=checks_rng,
        probe=probe,
    )


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
    parser.add_argument(
        "--model-fd", type=int, help="control socket of a model process started for this one"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    deadline = time.monotonic() + args.timeout
    try:
        check_settings(args.temperature, args.top_k, args.max_tokens)
        from vibe_research.lm.entry import check_paths

        check_paths(args.entry, args.run_dir)
        process = (
            ModelProcess.connect(args.model_fd, deadline)
            if args.model_fd is not None
            else ModelProcess.spawn(args.entry.resolve(), args.run_dir, deadline, args.cache_dir)
        )
        with process:
            with process.session() as first:
                tokenizer = load_tokenizer(first.info.tokenizer, args.cache_dir)
            sampled = sample(
                process,
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
    print(sampled.samples[0].model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
