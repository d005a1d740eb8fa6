"""Kneser-Ney: against an independent dict-based reference, against KenLM, and its file formats."""

import math
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from vibe_research.lm.errors import UserError
from vibe_research.lm.ngram import PAD, TABLE_ENTRIES, KneserNey
from vibe_research.lm.tokenizer import load_tokenizer

V, EOT = 12, 11


def random_stories(seed: int, stories: int) -> np.ndarray:
    """[eot] story [eot] ...: stories of 1-40 tokens from a skewed (Zipf-like) unigram."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, V)
    parts = [[EOT]]
    for _ in range(stories):
        parts.append(
            [*rng.choice(V - 1, size=rng.integers(1, 41), p=weights / weights.sum()).tolist(), EOT]
        )
    return np.array([t for part in parts for t in part], dtype=np.int64)


class ReferenceKN:
    """Kneser-Ney from the textbook definitions with tuples and dicts: slow, obviously right."""

    def __init__(
        self, stream: list[int], order: int, discount, prune: int, interpolate: bool
    ) -> None:
        self.order, self.prune, self.interpolate = order, prune, interpolate
        raw: list[Counter] = [Counter() for _ in range(order + 1)]
        opening: list[Counter] = [Counter() for _ in range(order + 1)]
        for i in range(1, len(stream)):
            history = self.context(stream, i, long=True)
            for n in range(1, min(len(history), order - 1) + 2):
                gram = (*history[len(history) - n + 1 :], stream[i])
                raw[n][gram] += 1
                if n - 1 == len(history):
                    opening[n][gram] += 1
        self.raw = raw
        self.adjusted = [Counter() for _ in range(order + 1)]
        self.adjusted[order] = raw[order]
        for n in range(1, order):
            left = Counter(gram[1:] for gram in raw[n + 1])
            self.adjusted[n] = Counter({g: left[g] + opening[n][g] for g in raw[n]})
        self.discounts = [None] + [
            self.estimate(self.adjusted[n], discount) for n in range(1, order + 1)
        ]
        self.totals = [defaultdict(int) for _ in range(order + 1)]
        self.context_raw = [defaultdict(int) for _ in range(order + 1)]
        for n in range(1, order + 1):
            for gram, a in self.adjusted[n].items():
                self.totals[n][gram[:-1]] += a
                self.context_raw[n][gram[:-1]] += raw[n][gram]

    @staticmethod
    def context(stream: list[int], i: int, long: bool = False) -> tuple:
        """Tokens before i back to the last eot (as "BOS"), without the order cap when long."""
        start = max([j for j in range(i) if stream[j] == EOT], default=0)
        history = ["BOS" if stream[j] == EOT else stream[j] for j in range(start, i)]
        return tuple(history)

    @staticmethod
    def estimate(adjusted: Counter, discount) -> tuple:
        if discount != "modified":
            return (discount,) * 3
        n1, n2, n3, n4 = (sum(1 for a in adjusted.values() if a == c) for c in (1, 2, 3, 4))
        if min(n1, n2, n3, n4) == 0:
            return 0.5, 1.0, 1.5  # the documented fallback (KenLM's)
        y = n1 / (n1 + 2 * n2)
        estimate = 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3
        return (
            estimate if all(0 < d < c for c, d in enumerate(estimate, start=1)) else (0.5, 1.0, 1.5)
        )

    def prob(self, word: int, history: tuple) -> float:
        n = len(history) + 1
        if n == 1:
            d = self.discounts[1]
            total = self.totals[1][()]
            spare = sum(d[min(a, 3) - 1] for a in self.adjusted[1].values())
            a = self.adjusted[1].get((word,), 0)
            return (a - d[min(a, 3) - 1] if a else 0.0) / total + spare / total / (V)
        lower = self.prob(word, history[1:])
        total = self.totals[n].get(history, 0)
        if total == 0 or self.context_raw[n][history] <= self.prune:
            return lower
        d = self.discounts[n]
        children = {g[-1]: a for g, a in self.adjusted[n].items() if g[:-1] == history}
        gamma = sum(d[min(a, 3) - 1] for a in children.values()) / total
        a = children.get(word, 0)
        own = (a - d[min(a, 3) - 1]) / total if a else 0.0
        if self.interpolate:
            return own + gamma * lower
        if a:
            return own
        unseen = 1.0 - sum(self.prob(w, history[1:]) for w in children)
        return gamma * lower / unseen

    def logprobs(self, stream: list[int]) -> np.ndarray:
        out = [
            math.log(
                self.prob(stream[i], self.context(stream, i)[-(self.order - 1) or len(stream) :])
            )
            for i in range(1, len(stream))
        ]
        return np.array(out)


@pytest.mark.parametrize(
    "order, discount, prune, interpolate",
    [
        (1, "modified", 0, True),
        (2, "modified", 0, True),
        (3, "modified", 0, True),
        (4, "modified", 0, True),
        (3, 0.6, 0, True),
        (3, "modified", 0, False),
        (4, "modified", 2, True),
        (3, 0.4, 1, False),
    ],
)
def test_matches_reference_definitions(order, discount, prune, interpolate) -> None:
    train, test = random_stories(0, 300), random_stories(1, 20)
    model = KneserNey.build(train, order, V, discount, prune, eot=EOT, interpolate=interpolate)
    reference = ReferenceKN(train.tolist(), order, discount, prune, interpolate)
    ours = model.logprob_stream(test)
    assert math.isnan(ours[0])
    np.testing.assert_allclose(ours[1:], reference.logprobs(test.tolist()), rtol=0, atol=1e-10)


def test_distributions_are_normalised_and_agree_with_the_stream() -> None:
    train, test = random_stories(2, 200), random_stories(3, 30)
    model = KneserNey.build(train, 4, V, eot=EOT)
    stream = model.logprob_stream(test)
    padded = np.concatenate((np.full(3, PAD), test))
    contexts = np.stack(
        [padded[i : i + 3] for i in range(1, len(test))]
    )  # the 3 tokens before test[i]
    dists = model.distributions(contexts)
    np.testing.assert_allclose(dists.sum(axis=1), 1.0, atol=1e-12)
    picked = np.log(dists[np.arange(len(contexts)), test[1:]])
    np.testing.assert_allclose(picked, stream[1:], atol=1e-12)
    assert dists.min() > 0


def test_large_vocabularies_scatter_every_order() -> None:
    """Above TABLE_ENTRIES the one-token-context rows are scattered too; same distributions."""
    vocab = 6000
    assert (vocab + 1) * vocab > TABLE_ENTRIES
    rng = np.random.default_rng(12)
    train = np.minimum(rng.zipf(1.3, size=20_000), vocab) - 1
    model = KneserNey.build(train, 3, vocab, eot=vocab - 1)
    test = np.minimum(rng.zipf(1.3, size=300), vocab) - 1
    dists = model.next_token_distributions(test[None, :-1])[0]
    np.testing.assert_allclose(dists.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        np.log(dists[np.arange(len(test) - 1), test[1:]]),
        model.logprob_stream(test)[1:],
        atol=1e-12,
    )


def test_context_stops_at_the_last_eot() -> None:
    model = KneserNey.build(random_stories(4, 200), 4, V, eot=EOT)
    before = model.distributions(np.array([[3, EOT, 5], [PAD, EOT, 5], [PAD, PAD, 5]]))
    np.testing.assert_array_equal(before[0], before[1])
    assert not np.allclose(before[1], before[2])  # "story start, 5" differs from a bare "5"


def test_next_token_distributions_are_causal() -> None:
    model = KneserNey.build(random_stories(5, 200), 3, V, eot=EOT)
    tokens = random_stories(6, 5)[None, :30]
    changed = tokens.copy()
    changed[0, 20:] = (changed[0, 20:] + 1) % V
    a, b = model.next_token_distributions(tokens), model.next_token_distributions(changed)
    np.testing.assert_array_equal(a[0, :20], b[0, :20])
    assert not np.array_equal(a[0, 20:], b[0, 20:])
    np.testing.assert_allclose(a.sum(axis=-1), 1.0, atol=1e-12)


def test_stream_without_eot_is_one_sentence() -> None:
    stream = np.random.default_rng(7).integers(0, V, size=3000)
    model = KneserNey.build(stream, 3, V)
    dists = model.distributions(np.array([[1, 2], [PAD, 2], [EOT, 2]]))
    np.testing.assert_allclose(dists.sum(axis=1), 1.0, atol=1e-12)
    assert not np.allclose(dists[0], dists[2])  # eot is an ordinary token here


def test_save_load_round_trip(tmp_path: Path) -> None:
    train, test = random_stories(8, 200), random_stories(9, 10)
    model = KneserNey.build(train, 4, V, prune=1, eot=EOT)
    model.save(tmp_path / "model.npz")
    loaded = KneserNey.load(tmp_path / "model.npz")
    assert loaded.meta == model.meta
    np.testing.assert_array_equal(loaded.logprob_stream(test), model.logprob_stream(test))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temp file left behind


def test_load_refuses_what_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(UserError, match="not an n-gram model"):
        KneserNey.load(tmp_path / "junk.npz")
    with pytest.raises(UserError, match="no n-gram model"):
        KneserNey.load(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"order": 7}, "order 7"),
        ({"discount": "kn"}, "discount"),
        ({"discount": 1.5}, "fixed discount"),
        ({"prune": -1}, "prune"),
        ({"vocab_size": 5}, "token ids must lie"),
    ],
)
def test_bad_settings_are_user_errors(kwargs, message) -> None:
    settings = {"tokens": random_stories(10, 5), "order": 3, "vocab_size": V} | kwargs
    with pytest.raises(UserError, match=message):
        KneserNey.build(**settings)


def test_arpa_refuses_names_that_are_not_words(tmp_path: Path) -> None:
    model = KneserNey.build(random_stories(11, 20), 2, V, eot=EOT)
    names = [f"w{i}" for i in range(V)]
    with pytest.raises(UserError, match="ARPA word"):
        model.write_arpa(tmp_path / "m.arpa", [*names[:3], "two words", *names[4:]])
    with pytest.raises(UserError, match="unique"):
        model.write_arpa(tmp_path / "m.arpa", ["same"] * V)
    assert not list(tmp_path.iterdir())


def story_streams(tokenizer, *paths: Path) -> np.ndarray:
    """The cache layout `[eot] story [eot] ...` of the stories in `paths`."""
    ids = [tokenizer.eot]
    for path in paths:
        stories = [s.strip() for s in path.read_text(encoding="utf-8").split("<|endoftext|>")]
        for story in tokenizer.encode_batch([s for s in stories if s]):
            ids += [*story, tokenizer.eot]
    return np.array(ids, dtype=np.int64)


@pytest.mark.parametrize(
    "settings", [{"order": 5}, {"order": 3, "discount": 0.7, "prune": 1, "interpolate": False}]
)
def test_kenlm_scores_our_arpa_exactly(
    tinystories, gpt2_ranks, monkeypatch, tmp_path, settings
) -> None:
    """KenLM loads our ARPA; its log10 score of every validation token equals ours within 1e-4.

    Framing: one KenLM sentence per story. Our eot is written `</s>` (KenLM scores it as the
    sentence end) and the story-opening eot `<s>` (KenLM's sentence-start context), so both sides
    score the same tokens with the same contexts. Other ids are written `t<id>`.
    """
    kenlm = pytest.importorskip("kenlm")
    monkeypatch.setenv("VIBE_GPT2_RANKS", str(gpt2_ranks))
    tokenizer = load_tokenizer("gpt2")
    train = story_streams(tokenizer, tinystories / "train-alldata00.txt")
    valid = story_streams(tokenizer, tinystories / "valid.txt")
    model = KneserNey.build(train, vocab_size=tokenizer.vocab_size, eot=tokenizer.eot, **settings)
    model.write_arpa(tmp_path / "model.arpa")
    ours = model.logprob_stream(valid)[1:] / math.log(10)
    ends = np.flatnonzero(valid == tokenizer.eot)
    sentences = [" ".join(f"t{i}" for i in valid[a + 1 : b]) for a, b in pairwise(ends)]
    theirs = kenlm.Model(str(tmp_path / "model.arpa"))
    scores = np.array(
        [s[0] for sentence in sentences for s in theirs.full_scores(sentence, bos=True, eos=True)]
    )
    assert len(scores) == len(ours) == len(valid) - 1
    assert np.abs(scores - ours).max() < 1e-4
