"""Scoring the validation stream: story-aligned windows, batches, and reading every answer.

Each story is scored from its leading end-of-story token (conditioned on nothing before it); a
story longer than the context in consecutive windows of context_length tokens. Every token after
the stream's first is a target exactly once, the end-of-story tokens included (0 bytes).

`RowReader` reads an answer block: it checks that every row it received is normalised and picks
the log-probability of each target, and makes sure the two saw the same values (an answer may
lie in memory the model process can still write).
"""

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vibe_research.lm.entry import ModelRejected
from vibe_research.lm.errors import UserError
from vibe_research.lm.sessions import LOGIT_ELEMENTS, Session
from vibe_research.lm.tokenizer import Tokenizer

NORM_TOLERANCE = 1e-3  # |log sum_v p(v)| allowed per row (float32 over 50k tokens stays far below)
READ_TOLERANCE = (
    1e-5  # nats: a target read beside the normalisation pass (exp then log of float32: ~1e-7)
)
TINY = 1e-30  # below this probability exp and log no longer round-trip in float32
CHUNK_ELEMENTS = 1 << 19  # values read per step: 2 MB of float32, so a chunk stays in cache

Window = tuple[int, int]  # (start, length): inputs stream[start:start+length], targets one later


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


def story_windows(stream: np.ndarray, eot: int, context_length: int) -> list[Window]:
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


def batches(windows: list[Window], vocab_size: int) -> Iterator[list[Window]]:
    """Windows, longest first, grouped so rows * width * V (the model's padded answer) stays
    under LOGIT_ELEMENTS; a window longer than that goes alone."""
    group: list[Window] = []
    for window in sorted(windows, key=lambda w: -w[1]):
        if group and (len(group) + 1) * group[0][1] * vocab_size > LOGIT_ELEMENTS:
            yield group
            group = []
        group.append(window)
    if group:
        yield group


def request(stream: np.ndarray, group: list[Window], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs int64 [B, width] (right-padded with `pad`, which a causal model ignores) and lengths."""
    width = max(length for _, length in group)
    tokens = np.full((len(group), width), pad, dtype=np.int64)
    for row, (start, length) in enumerate(group):
        tokens[row, :length] = stream[start : start + length]
    return tokens, np.array([length for _, length in group], dtype=np.int64)


class RowReader:
    """Normalisation of every row read, and the target log-probabilities.

    An answer may lie in memory the model process can still write, so a value read twice could
    differ between the readings. Every value is therefore read once, by the pass that sums
    exp(log p) over the vocabulary (into memory of the reader's own); the targets' values, read
    beside it, must be the ones that pass saw (READ_TOLERANCE), or the answer is rejected.

    numpy, single-threaded: the reads come in small pieces between the model's answers, and
    OpenMP threads kept for them stall at barriers on a busy machine."""

    def __init__(self) -> None:
        self.rows = 0
        self.max_error = 0.0  # largest |log sum_v p(v)| seen
        self._scratch: dict[tuple, np.ndarray] = {}

    def read(self, block: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """block [n, V] float -> float64 [n]: log p(targets[i]) of row i. ModelRejected when a row
        is not normalised or a target has no finite log-probability."""
        rows, vocab = block.shape
        step = max(1, CHUNK_ELEMENTS // vocab)
        picked = np.empty(rows, dtype=np.float64)
        for first in range(0, rows, step):
            part = block[first : first + step]
            index = np.arange(len(part)), targets[first : first + len(part)]
            chosen = part[index].astype(np.float64)
            probabilities = self._check(part, "a row it was asked")
            _agree(chosen, probabilities[index])
            picked[first : first + len(part)] = chosen
        self.rows += rows
        if not np.isfinite(picked).all():
            raise ModelRejected(
                "logprobs gave a NaN, +inf or zero probability (-inf) for a validation token"
            )
        return picked

    def distribution(self, row: np.ndarray) -> np.ndarray:
        """row [V] -> a float64 copy of this process's own, checked normalised (for sampling)."""
        private = row.astype(np.float64)
        self._check(private[None], "a sampling step")
        self.rows += 1
        return private

    def _check(self, part: np.ndarray, where: str) -> np.ndarray:
        """exp(part), in the reader's own memory, once every row of it is shown normalised."""
        # log-probabilities are <= 0 when normalised, so exp cannot overflow; a row far off comes
        # out infinite, and NaN anywhere makes the row's sum NaN: both count as infinitely off
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            probabilities = np.exp(part, out=self._buffer(part))
            errors = np.abs(np.log(probabilities.sum(axis=1, dtype=np.float64)))
        error = float(np.nan_to_num(errors, nan=math.inf).max())
        self.max_error = max(self.max_error, error)
        if error > NORM_TOLERANCE:
            raise ModelRejected(
                f"not normalised: log sum_v p(v) is off by {error:.3g} in {where} "
                f"(allowed {NORM_TOLERANCE:g}); return log_softmax over the whole vocabulary"
            )
        return probabilities

    def _buffer(self, like: np.ndarray) -> np.ndarray:
        """Memory of this reader's own shaped like `like` (reused: the reads keep it in cache)."""
        key = (like.dtype.str, like.shape[1])
        held = self._scratch.get(key)
        if held is None or len(held) < len(like):
            held = self._scratch[key] = np.empty((max(len(like), 1), like.shape[1]), like.dtype)
        return held[: len(like)]


def _agree(chosen: np.ndarray, seen: np.ndarray) -> None:
    """The targets' log-probabilities `chosen` must be those whose exp the normalisation `seen`."""
    tiny = seen < TINY  # exp underflows here: only as tiny a log-probability can stand
    with np.errstate(divide="ignore", invalid="ignore"):
        close = np.abs(np.log(seen.astype(np.float64)) - chosen) <= READ_TOLERANCE
        fine = np.where(tiny, chosen <= math.log(TINY) + READ_TOLERANCE, close)
    if not fine.all():
        raise ModelRejected(
            "the model process changed its answer while it was read: a target's log-probability "
            "differs from the one the normalisation check summed"
        )


def score_windows(
    session: Session, stream: np.ndarray, windows: list[Window], eot: int, reader: RowReader
) -> np.ndarray:
    """float64 [len(stream) - 1]: log p(stream[i + 1] | its window up to i), every window asked
    of `session` in batches."""
    picked = np.full(len(stream) - 1, np.nan)
    for group in batches(windows, session.info.vocab_size):
        tokens, lengths = request(stream, group, eot)
        answer = session.logprobs(tokens, lengths)
        for (start, length), block in zip(group, answer.rows, strict=True):
            picked[start : start + length] = reader.read(
                block, stream[start + 1 : start + length + 1]
            )
    return picked


def totals(picked: np.ndarray, stream: np.ndarray, tokenizer: Tokenizer) -> Score:
    scored = stream[1:]
    return Score(
        float(-picked.sum()),
        len(scored),
        int(tokenizer.token_bytes[scored].sum()),
        int((scored == tokenizer.eot).sum()),
    )
