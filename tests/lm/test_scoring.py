"""Reading answers: every row checked normalised, targets picked from the values that check saw."""

import math

import numpy as np
import pytest

from vibe_research.lm.entry import ModelRejected
from vibe_research.lm.scoring import NORM_TOLERANCE, RowReader, batches
from vibe_research.lm.sessions import LOGIT_ELEMENTS


def rows(count: int, vocab: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(count, vocab)).astype(np.float32)
    return logits - np.log(np.exp(logits.astype(np.float64)).sum(axis=1, keepdims=True)).astype(
        np.float32
    )


def test_targets_are_read_and_every_row_counted() -> None:
    block, targets = rows(300, 97), np.arange(300) % 97
    reader = RowReader()
    picked = reader.read(block, targets)
    np.testing.assert_array_equal(picked, block[np.arange(300), targets].astype(np.float64))
    assert reader.rows == 300 and reader.max_error < 1e-5


def test_a_row_off_by_more_than_the_tolerance_is_rejected() -> None:
    block = rows(10, 50)
    block[4] += 2 * NORM_TOLERANCE
    with pytest.raises(ModelRejected, match="not normalised"):
        RowReader().read(block, np.zeros(10, dtype=np.int64))
    block[4] = np.nan
    with pytest.raises(ModelRejected, match="not normalised"):
        RowReader().read(block, np.zeros(10, dtype=np.int64))


def test_a_target_of_probability_zero_is_rejected() -> None:
    block = np.full((3, 4), -math.log(3), dtype=np.float32)
    block[:, 0] = -np.inf
    with pytest.raises(ModelRejected, match="zero probability"):
        RowReader().read(block, np.array([1, 0, 2]))


class Changing(np.ndarray):
    """An answer whose targets read differently from the rest: what a model process writing its
    buffer while the scorer reads it could make the scorer see."""

    def __getitem__(self, index):
        value = super().__getitem__(index)
        if isinstance(index, tuple) and all(isinstance(part, np.ndarray) for part in index):
            return np.zeros_like(value)  # certainty for every target
        return value.view(Changing) if isinstance(value, np.ndarray) else value


def test_targets_that_differ_from_what_the_normalisation_summed_are_rejected() -> None:
    block = rows(8, 30).view(Changing)
    with pytest.raises(ModelRejected, match="changed its answer while it was read"):
        RowReader().read(block, np.arange(8))


def test_batches_keep_the_padded_answer_under_the_limit_and_take_long_windows_alone() -> None:
    windows = [(i * 100, length) for i, length in enumerate([3, 90, 7, 90, 40])]
    groups = list(batches(windows, vocab_size=1 << 15))
    assert [w for group in groups for w in group] == sorted(windows, key=lambda w: -w[1])
    assert all(len(g) * g[0][1] * (1 << 15) <= LOGIT_ELEMENTS or len(g) == 1 for g in groups)
    assert max(len(g) for g in groups) > 1 and [len(g) for g in groups][:2] == [1, 1]
