"""Evaluation (DO NOT CHANGE from experiments): the fixed measurement of any trained model.

    python -m vibe_research.lm.evaluate --entry FILE --run-dir DIR [--cache-dir DIR] [--valid TXT]
        [--samples N] [--max-tokens N] [--out FILE] [--model-fd N] [--timeout S]

This process is the scorer: it never imports the experiment. The model lives in another process
(vibe_research.lm.serve: started here, or by the runner in its own sandbox and handed over with
--model-fd), which answers sessions, each in a fresh process that has seen no earlier request.
The scorer holds the validation split, sends the token batches, checks every answer and sums the
bits:

1. main pass: every story-aligned window (lm/scoring.py) in one session; every row received
   must be normalised, every target's log-probability finite;
2. checks: a sample of the scored windows asked again in a fresh session, cut after a random row
   (lm/checks.py); the targets must score as in the main pass: causal, rows independent, no
   memory between calls;
3. samples from the fixed story beginnings (lm/generate.py), each in its own session, tokens
   chosen here; steps spot-checked against logprobs.

Exit 0 ok, 3 the model broke the contract (the reason is in the result), 2 bad input.
bits per byte = summed -log2 p / UTF-8 bytes of the story texts.
"""

import argparse
import logging
import math
import secrets
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from vibe_research.lm import atomic, fingerprint
from vibe_research.lm.checks import CAUSAL_TOLERANCE, CHECK_WINDOWS, choose, recheck
from vibe_research.lm.corpus import files_split
from vibe_research.lm.entry import ModelRejected, check_paths
from vibe_research.lm.errors import UserError
from vibe_research.lm.generate import STORY_BEGINNINGS, Sample, SamplingChecks, story_samples
from vibe_research.lm.scoring import (
    NORM_TOLERANCE,
    RowReader,
    score_windows,
    story_windows,
    totals,
)
from vibe_research.lm.sessions import ModelProcess, ModelSource
from vibe_research.lm.tokenizer import Tokenizer, load_tokenizer
from vibe_research.lm.tokens import encode_stream, open_split, stream_dtype

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: checks on the scored data, through a separate model process


class ContractChecks(BaseModel):
    causal: bool  # shown: the re-asked windows scored as in the main pass (False until then)
    normalised: bool  # every row received summed to 1 (False once one did not)
    max_causal_change: float  # nats: the largest move of a target's log-probability
    max_normalisation_error: float  # |log sum_v p(v)| over every row received
    rows_normalised: int = 0  # rows whose normalisation was checked: every row received
    windows_checked: int = 0  # scored windows asked again, cut after a random row
    rows_checked: int = 0  # targets compared between the main pass and the re-asked windows
    seed: int | None = None  # drawn for this evaluation: which windows, cuts and sampled steps


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
    valid: str | None = None  # the source of the stories scored
    split: str = "valid"  # which: valid, test (the sealed split) or file (a --valid story file)
    valid_fingerprint: str | None = None  # of the validation text, tokenizer-independent
    checks: ContractChecks | None = None
    bpb: float | None = None  # validation bits per UTF-8 byte of story text
    perplexity: float | None = None  # per token of `tokenizer`
    nll_bits: float | None = None  # summed over every scored token
    tokens: int = 0
    bytes: int = 0
    stories: int = 0
    samples: list[Sample] = []
    sampling: SamplingChecks | None = None
    torch_version: str | None = None
    threads: int | None = None  # torch threads of the model process (as it says)
    load_s: float = 0.0  # the model process up, the first session's load_model, the valid split
    score_s: float = 0.0  # the main pass
    check_s: float = 0.0  # the re-asked windows, in a fresh session
    sample_s: float = 0.0  # the samples (a session each), the decoder probe and spot checks
    wall_s: float = 0.0


Scored = Literal["valid", "test"]


@dataclass(frozen=True)
class ValidStream:
    tokens: np.ndarray  # int64[N], `[eot] s1 [eot] s2 [eot] ...`
    description: str
    fingerprint: str


def valid_stream(
    tokenizer: Tokenizer, cache_dir: Path | None, valid: Path | None, split: Scored = "valid"
) -> ValidStream:
    """The cached `split` (valid, or the sealed test split) for the tokenizer, or `valid` (a story
    file) tokenized here."""
    if valid is None:
        cached = open_split(split, tokenizer.spec, cache_dir)
        if cached.manifest.tokenizer_fingerprint != tokenizer.fingerprint:
            raise UserError(
                f"the {split} cache for {tokenizer.spec} was built with another tokenizer: rerun `vibe-research data prepare`"
            )
        tokens = np.asarray(cached.tokens, dtype=np.int64)
        return ValidStream(tokens, cached.manifest.source, cached.manifest.source_fingerprint)
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
    timeout_s: float = 600.0,
    model_fd: int | None = None,
    split: Scored = "valid",
) -> EvalResult:
    """Check and score one trained model through its own process (started here unless
    `model_fd` is the control socket of one started for us). UserError for bad input; a broken
    model gives ok=False with the reason."""
    started = time.perf_counter()
    check_paths(entry, run_dir)
    if not 0 <= samples <= len(STORY_BEGINNINGS) or max_tokens < 1:
        raise UserError(f"use 0 to {len(STORY_BEGINNINGS)} samples and at least 1 token each")
    result = EvalResult(
        ok=False, entry=str(entry), run_dir=str(run_dir), lm_fingerprint=fingerprint()
    )
    deadline = time.monotonic() + timeout_s
    try:
        process = (
            ModelProcess.connect(model_fd, deadline)
            if model_fd is not None
            else ModelProcess.spawn(entry.resolve(), run_dir, deadline, cache_dir)
        )
        with process:
            measure(process, cache_dir, valid, samples, max_tokens, result, started, split)
        result.ok = True
    except ModelRejected as exc:
        result.reason = str(exc)
    result.wall_s = time.perf_counter() - started
    return result


def measure(
    source: ModelSource,
    cache_dir: Path | None,
    valid: Path | None,
    samples: int,
    max_tokens: int,
    result: EvalResult,
    started: float,
    split: Scored = "valid",
) -> None:
    """Score, check and sample the model behind `source`, filling in `result`; `split` names the
    cached split scored (the sealed test split only when an experiment became the best)."""
    result.torch_version = _torch_version()
    seed = secrets.randbits(63)
    rng = np.random.default_rng(seed)
    reader = RowReader()
    checks = ContractChecks(
        causal=False, normalised=False, max_causal_change=0.0, max_normalisation_error=0.0
    )
    try:
        with source.session() as main:
            info = main.info
            result.threads = info.threads
            result.tokenizer, result.vocab_size = info.tokenizer, info.vocab_size
            result.context_length = info.context_length
            tokenizer = load_tokenizer(info.tokenizer, cache_dir)
            if tokenizer.vocab_size != info.vocab_size:
                raise ModelRejected(
                    f"vocab_size {info.vocab_size} but tokenizer {tokenizer.spec} has {tokenizer.vocab_size} tokens"
                )
            stream = valid_stream(tokenizer, cache_dir, valid, split)
            result.split = split if valid is None else "file"
            result.tokenizer_fingerprint = tokenizer.fingerprint
            result.valid, result.valid_fingerprint = stream.description, stream.fingerprint
            result.load_s = time.perf_counter() - started
            windows = story_windows(stream.tokens, tokenizer.eot, info.context_length)
            begun = time.perf_counter()
            picked = score_windows(main, stream.tokens, windows, tokenizer.eot, reader)
            result.score_s = time.perf_counter() - begun
        begun = time.perf_counter()
        chosen = choose(windows, stream.tokens, tokenizer.eot, CHECK_WINDOWS, rng)
        with source.session() as again:
            found = recheck(again, stream.tokens, chosen, picked, tokenizer.eot, reader)
        result.check_s = time.perf_counter() - begun
        checks.windows_checked, checks.rows_checked = found.windows, found.rows
        checks.max_causal_change = found.max_change
        checks.causal = found.max_change <= CAUSAL_TOLERANCE
        if not checks.causal:
            raise ModelRejected(
                f"not causal: a scored target's log-probability moved by {found.max_change:.3g} nats "
                f"(allowed {CAUSAL_TOLERANCE:g}) when its window was asked again in a fresh process, "
                "cut after a random row, among other stories; row t may only see tokens 0..t of "
                "its own row, and logprobs may keep no memory from one call to the next"
            )
        score = totals(picked, stream.tokens, tokenizer)
        result.bpb, result.perplexity = score.bpb, score.perplexity
        result.nll_bits = score.nats / math.log(2)
        result.tokens, result.bytes, result.stories = score.tokens, score.bytes, score.stories
        if samples:
            begun = time.perf_counter()
            start, length = windows[int(rng.integers(len(windows)))]
            probe = stream.tokens[start : start + length].tolist()
            sampled = story_samples(source, tokenizer, samples, max_tokens, rng, probe)
            result.samples, result.sampling = sampled.samples, sampled.checks
            result.sample_s = time.perf_counter() - begun
    finally:
        checks.rows_normalised, checks.max_normalisation_error = reader.rows, reader.max_error
        checks.normalised = reader.max_error <= NORM_TOLERANCE
        checks.seed = seed
        result.checks = checks


def _torch_version() -> str | None:
    """torch's version, without importing it: the scorer does not need torch."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


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
    parser.add_argument(
        "--model-fd", type=int, help="control socket of a model process started for this one"
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds for the whole evaluation"
    )
    parser.add_argument(
        "--split",
        choices=["valid", "test"],
        default="valid",
        help="the cached split to score: valid, or the sealed test split (for the best only)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        result = evaluate(
            args.entry,
            args.run_dir,
            args.cache_dir,
            args.valid,
            args.samples,
            args.max_tokens,
            args.timeout,
            args.model_fd,
            args.split,
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
