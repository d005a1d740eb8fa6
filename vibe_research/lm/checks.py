"""Contract checks on the scored data: the scored windows asked again, cut short, elsewhere.

After the main pass, a sample of the scored windows (at most one per story, chosen with a seed
drawn for this evaluation, which the model cannot know) is asked again in a fresh session: each
window cut after a random row, among other cut windows. The log-probability of every target up
to the cut must come out as it did in the main pass:

- causality: the row before the cut never has its next token in the input now, so a model that
  used it (or any later token) in the main pass answers differently;
- independence of rows: the window's batch-mates are other stories now, so a model that used its
  neighbours (the next window of its story, other stories) answers differently;
- no memory: the fresh session has seen nothing, so a model that used what earlier calls sent it
  (or behaved differently after a number of calls) answers differently.

The model cannot tell which rows will be compared when it answers the main pass. Only the
target's log-probability matters for the score, so that is what is compared; normalisation of
every row is checked as it is read (scoring.RowReader).
"""

from dataclasses import dataclass

import numpy as np

from vibe_research.lm.scoring import RowReader, Window, batches, request
from vibe_research.lm.sessions import Session

# nats: how far a target's log-probability may move between two askings. An honest bf16 model
# moves up to ~2e-4 (its kernels round differently when the batch shape changes); a cheat held
# under 1e-3 nats per target gains at most ~0.0004 bits per byte, far below seed noise (~0.01).
CAUSAL_TOLERANCE = 1e-3
CHECK_WINDOWS = 128  # scored windows asked again (one per story), each cut at a random row


@dataclass(frozen=True)
class Recheck:
    windows: int
    rows: int
    max_change: float  # nats


def choose(
    windows: list[Window], stream: np.ndarray, eot: int, count: int, rng: np.random.Generator
) -> list[Window]:
    """(start, cut) of up to `count` windows of distinct stories, each cut after a random row."""
    starts = np.array([start for start, _ in windows])
    lengths = np.array([length for _, length in windows])
    story = np.searchsorted(np.flatnonzero(stream == eot), starts, side="right")
    stories = np.unique(story)
    chosen = []
    for picked in rng.choice(stories, size=min(count, len(stories)), replace=False):
        candidates = np.flatnonzero(story == picked)
        window = int(rng.choice(candidates))
        chosen.append((int(starts[window]), int(rng.integers(1, lengths[window] + 1))))
    return chosen


def recheck(
    session: Session,
    stream: np.ndarray,
    chosen: list[Window],
    main: np.ndarray,
    eot: int,
    reader: RowReader,
) -> Recheck:
    """Ask the cut windows of `session` and compare each target with `main` (scoring.score_windows)."""
    rows, change = 0, 0.0
    for group in batches(chosen, session.info.vocab_size):
        tokens, lengths = request(stream, group, eot)
        answer = session.logprobs(tokens, lengths)
        for (start, cut), block in zip(group, answer.rows, strict=True):
            again = reader.read(block, stream[start + 1 : start + cut + 1])
            change = max(change, float(np.abs(again - main[start : start + cut]).max()))
            rows += cut
    return Recheck(len(chosen), rows, change)
