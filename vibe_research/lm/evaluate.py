"""Evaluation (DO NOT CHANGE from experiments): the fixed measurement of any trained model.

    python -m vibe_research.lm.evaluate --entry FILE --run-dir DIR [--cache-dir DIR] [--valid TXT]
        [--samples N] [--max-tokens N] [--out FILE]

Loads the model in this process, checks the ModelAPI contract (causal, normalised), scores the
validation split and samples the fixed story beginnings. Exit 0 ok, 3 the model broke the
contract (the reason is in the result), 2 bad input.

Scoring: every story is scored from its leading end-of-story token, so each story's probability
is conditioned on nothing before it; a story longer than the context is scored in consecutive
windows of context_length tokens. Every token after the stream's first is predicted exactly once,
the end-of-story tokens included (they stand for 0 bytes). bits per byte = summed -log2 p / UTF-8
bytes of the story texts.
"""

import argparse
import itertools
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from vibe_research.lm import atomic, fingerprint
from vibe_research.lm.api import LanguageModel
from vibe_research.lm.corpus import files_split
from vibe_research.lm.entry import ModelRejected, call_logprobs, load_model
from vibe_research.lm.errors import UserError
from vibe_research.lm.generate import LOGIT_ELEMENTS, STORY_BEGINNINGS, Sample, story_samples
from vibe_research.lm.tokenizer import Tokenizer, load_tokenizer
from vibe_research.lm.tokens import encode_stream, open_split, stream_dtype

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CAUSAL_TOLERANCE = 1e-4  # nats: how far an earlier prediction may move when later tokens change
NORM_TOLERANCE = 1e-3  # |log sum_v p(v)| allowed per row (float32 over 50k tokens stays far below)
PROBE_ROWS, PROBE_LENGTH = 2, 128  # the contract probe: [2, min(128, context_length)] tokens


class ContractChecks(BaseModel):
    causal: bool
    normalised: bool
    max_causal_change: float  # nats
    max_normalisation_error: float  # |logsumexp| over the vocabulary


class EvalResult(BaseModel):
    format_version: int = FORMAT_VERSION
    ok: bool
    reason: str | None = None  # why the model was rejected
    entry: str
    run_dir: str
    lm_fingerprint: str  # of vibe_research/lm: the evaluator that produced these numbers
    tokenizer: str | None = None
    tokenizer_fingerprint: str | None = None
    vocab_size: int | None = None
    context_length: int | None = None
    valid: str | None = None  # the validation source
    valid_fingerprint: str | None = None  # of the validation text, tokenizer-independent
    checks: ContractChecks | None = None
    bpb: float | None = None  # validation bits per UTF-8 byte of story text
    perplexity: float | None = None  # per token of `tokenizer`
    nll_bits: float | None = None  # summed over every scored token
    tokens: int = 0
    bytes: int = 0
    stories: int = 0
    samples: list[Sample] = []
    torch_version: str | None = None
    threads: int | None = None
    load_s: float = 0.0
    score_s: float = 0.0
    sample_s: float = 0.0
    wall_s: float = 0.0


@dataclass(frozen=True)
class Score:
    nats: float  # summed -ln p
    tokens: int
    bytes: int
    stories: int

    @property
    def bpb(self) -> float:
        return self.nats / math.log(2) / self.bytes

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats / self.tokens)


@dataclass(frozen=True)
class ValidStream:
    tokens: np.ndarray  # int64[N], `[eot] s1 [eot] s2 [eot] ...`
    description: str
    fingerprint: str


def check_contract(model: LanguageModel, probe: "torch.Tensor") -> ContractChecks:
    """Normalisation of every row, and causality: changing tokens from a cut on must not move earlier rows."""
    import torch

    base = call_logprobs(model, probe).double()
    norm_error = float(torch.logsumexp(base, dim=-1).abs().nan_to_num(nan=math.inf).max())
    generator = torch.Generator().manual_seed(0)
    length = probe.shape[1]
    change = 0.0
    for cut in sorted({1, length // 4, length // 2, 3 * length // 4, length - 1} - {0}):
        perturbed = probe.clone()
        shift = torch.randint(1, model.vocab_size, perturbed[:, cut:].shape, generator=generator)
        perturbed[:, cut:] = (perturbed[:, cut:] + shift) % model.vocab_size
        moved = call_logprobs(model, perturbed).double()[:, :cut]
        change = max(change, _max_difference(base[:, :cut], moved))
    return ContractChecks(
        causal=change <= CAUSAL_TOLERANCE,
        normalised=norm_error <= NORM_TOLERANCE,
        max_causal_change=change,
        max_normalisation_error=norm_error,
    )


def _max_difference(a: "torch.Tensor", b: "torch.Tensor") -> float:
    """Largest |a - b|, where equal infinities count as equal and any NaN as infinitely different."""
    import torch

    same = a == b  # also true for matching -inf entries, whose difference would be NaN
    diff = torch.where(same, torch.zeros_like(a), (a - b).abs()).nan_to_num(nan=math.inf)
    return float(diff.max()) if diff.numel() else 0.0


def story_windows(stream: np.ndarray, eot: int, context_length: int) -> list[tuple[int, int]]:
    """(start, length) of every scoring window: inputs stream[start:start+length], targets shifted by one."""
    if len(stream) < 2 or stream[0] != eot:
        raise UserError(
            "the validation stream must start with the end-of-story token and hold a story"
        )
    bounds = np.flatnonzero(stream == eot)
    bounds = bounds if bounds[-1] == len(stream) - 1 else np.append(bounds, len(stream) - 1)
    return [
        (start, min(context_length, int(end) - start))
        for begin, end in itertools.pairwise(bounds)
        for start in range(int(begin), int(end), context_length)
    ]


def score(model: LanguageModel, stream: np.ndarray, tokenizer: Tokenizer) -> Score:
    """Summed negative log-likelihood of every token after the first, in story-aligned windows."""
    import torch

    windows = sorted(
        story_windows(stream, tokenizer.eot, model.context_length), key=lambda w: -w[1]
    )
    nats = 0.0
    for group in _batches(windows, model.vocab_size):
        width = group[0][1]
        inputs = torch.full((len(group), width), tokenizer.eot, dtype=torch.long)
        targets = torch.full((len(group), width), tokenizer.eot, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.bool)
        for row, (start, length) in enumerate(group):
            inputs[row, :length] = torch.from_numpy(stream[start : start + length])
            targets[row, :length] = torch.from_numpy(stream[start + 1 : start + length + 1])
            mask[row, :length] = True
        picked = (
            call_logprobs(model, inputs)
            .gather(-1, targets.unsqueeze(-1))
            .squeeze(-1)
            .double()[mask]
        )
        if not bool(torch.isfinite(picked).all()):
            raise ModelRejected(
                "logprobs gave a NaN, +inf or zero probability (-inf) for a validation token"
            )
        nats -= float(picked.sum())
    scored = stream[1:]
    return Score(
        nats,
        len(scored),
        int(tokenizer.token_bytes[scored].sum()),
        int((scored == tokenizer.eot).sum()),
    )


def _batches(windows: list[tuple[int, int]], vocab_size: int) -> Iterator[list[tuple[int, int]]]:
    """Consecutive windows (longest first) grouped so rows * width * V stays under LOGIT_ELEMENTS."""
    group: list[tuple[int, int]] = []
    for window in windows:
        if group and (len(group) + 1) * group[0][1] * vocab_size > LOGIT_ELEMENTS:
            yield group
            group = []
        group.append(window)
    if group:
        yield group


def valid_stream(tokenizer: Tokenizer, cache_dir: Path | None, valid: Path | None) -> ValidStream:
    """The cached valid split for the tokenizer, or `valid` (a story file) tokenized here."""
    if valid is None:
        split = open_split("valid", tokenizer.spec, cache_dir)
        if split.manifest.tokenizer_fingerprint != tokenizer.fingerprint:
            raise UserError(
                f"the valid cache for {tokenizer.spec} was built with another tokenizer: rerun `vibe-research data prepare`"
            )
        tokens = np.asarray(split.tokens, dtype=np.int64)
        return ValidStream(tokens, split.manifest.source, split.manifest.source_fingerprint)
    stories = files_split("valid", [str(valid)], "text", Path.cwd())
    chunks = [
        array
        for array, _, _ in encode_stream(stories, tokenizer, stream_dtype(tokenizer.vocab_size))
    ]
    return ValidStream(
        np.concatenate(chunks).astype(np.int64), stories.description, stories.fingerprint
    )


def evaluate(
    entry: Path,
    run_dir: Path,
    cache_dir: Path | None = None,
    valid: Path | None = None,
    samples: int = 8,
    max_tokens: int = 256,
) -> EvalResult:
    """Check and score one trained model. UserError for bad input; a broken model gives ok=False."""
    start = time.perf_counter()
    result = EvalResult(
        ok=False, entry=str(entry), run_dir=str(run_dir), lm_fingerprint=fingerprint()
    )
    try:
        model = load_model(entry, run_dir)
        import torch  # after load_model, which checks the paths first: bad input fails at once

        result.torch_version, result.threads = torch.__version__, torch.get_num_threads()
        result.tokenizer, result.vocab_size = model.tokenizer, model.vocab_size
        result.context_length = model.context_length
        tokenizer = load_tokenizer(model.tokenizer, cache_dir)
        if tokenizer.vocab_size != model.vocab_size:
            raise ModelRejected(
                f"vocab_size {model.vocab_size} but tokenizer {tokenizer.spec} has {tokenizer.vocab_size} tokens"
            )
        stream = valid_stream(tokenizer, cache_dir, valid)
        result.tokenizer_fingerprint = tokenizer.fingerprint
        result.valid, result.valid_fingerprint = stream.description, stream.fingerprint
        result.load_s = time.perf_counter() - start
        _run_checks(model, stream.tokens, result)
        _measure(model, tokenizer, stream.tokens, samples, max_tokens, result)
        result.ok = True
    except ModelRejected as exc:
        result.reason = str(exc)
    result.wall_s = time.perf_counter() - start
    return result


def _measure(
    model: LanguageModel,
    tokenizer: Tokenizer,
    stream: np.ndarray,
    samples: int,
    max_tokens: int,
    result: EvalResult,
) -> None:
    """Fill in the scores and samples of a model that passed the contract checks."""
    started = time.perf_counter()
    totals = score(model, stream, tokenizer)
    result.score_s = time.perf_counter() - started
    result.bpb, result.perplexity, result.nll_bits = (
        totals.bpb,
        totals.perplexity,
        totals.nats / math.log(2),
    )
    result.tokens, result.bytes, result.stories = totals.tokens, totals.bytes, totals.stories
    started = time.perf_counter()
    result.samples = story_samples(model, tokenizer, samples, max_tokens) if samples else []
    result.sample_s = time.perf_counter() - started


def _run_checks(model: LanguageModel, stream: np.ndarray, result: EvalResult) -> None:
    import torch

    length = min(model.context_length, PROBE_LENGTH, (len(stream) - 1) // PROBE_ROWS)
    if length < 1:
        raise UserError(
            "the validation stream is too short to probe the model; use more validation stories"
        )
    probe = torch.from_numpy(stream[: PROBE_ROWS * length].reshape(PROBE_ROWS, length).copy())
    result.checks = check_contract(model, probe)
    checks = result.checks
    if not checks.normalised:
        raise ModelRejected(
            f"not normalised: log sum_v p(v) is off by {checks.max_normalisation_error:.3g} "
            f"(allowed {NORM_TOLERANCE:g}); return log_softmax over the whole vocabulary"
        )
    if not checks.causal:
        raise ModelRejected(
            f"not causal: changing later tokens moved an earlier prediction by {checks.max_causal_change:.3g} nats "
            f"(allowed {CAUSAL_TOLERANCE:g}); position t may only see tokens 0..t"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vibe_research.lm.evaluate", description="Measure a trained model."
    )
    parser.add_argument(
        "--entry", type=Path, required=True, help="experiment file defining load_model(run_dir)"
    )
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument(
        "--cache-dir", type=Path, help="token cache (default: VIBE_CACHE_DIR or the workspace's)"
    )
    parser.add_argument(
        "--valid", type=Path, help="score this story file instead of the cached valid split"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=8,
        help=f"story beginnings to sample, 0 to {len(STORY_BEGINNINGS)}",
    )
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens per sample at most")
    parser.add_argument("--out", type=Path, help="also write the result JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.cache_dir is not None:
        # The entry runs in this process; entries that read the cache (tokenizers, n-gram tables) find it here.
        os.environ["VIBE_CACHE_DIR"] = str(args.cache_dir)
    try:
        result = evaluate(
            args.entry, args.run_dir, args.cache_dir, args.valid, args.samples, args.max_tokens
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = result.model_dump_json(indent=2)
    if args.out is not None:
        atomic.write_text(args.out, text + "\n")
    print(text)
    return 0 if result.ok else 3


if __name__ == "__main__":
    sys.exit(main())
