"""Interpolated modified Kneser-Ney n-gram models, counted exactly with numpy (orders 1 to 6).

Evaluation core (DO NOT CHANGE from experiments): n-gram experiments, the distillation teacher,
shallow fusion and the heuristic judge all read their probabilities from here.

Stories. With `eot` given, `<|endoftext|>` ends one story and opens the next: a context never
reaches back past the last eot, and that eot stands in the context as the sentence-start symbol
BOS (id V, never predicted). This is KenLM's framing with one story per sentence (eot is `</s>`
when predicted and `<s>` when it opens a context), so a model written by `write_arpa` scores in
KenLM exactly as it does here. Without `eot` the stream is one long sentence.

Ids. Order-1 ids are the token ids 0..V-1 plus BOS = V, so W = V + 1 ids. An n-gram of order
n >= 2 is (context, word), its context an id of order n-1; its key is context * W + word and its
id is its rank among the sorted unique keys of its order: exact, no hashing.

Storage is ARPA-shaped: every present n-gram keeps ln p(word | context), its full smoothed
probability, and every n-gram of order < N keeps the ln backoff weight it has as a context. A
query takes the longest present n-gram and adds the backoff weights of the longer contexts.
"""

import logging
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from vibe_research.lm import atomic
from vibe_research.lm.errors import UserError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_ORDER = 6
PAD = -1  # "no token" in the contexts given to `distributions`
FALLBACK_DISCOUNTS = (
    0.5,
    1.0,
    1.5,
)  # D1, D2, D3+ when counts of counts cannot give valid ones (KenLM's fallback)
TABLE_ENTRIES = (
    1 << 25
)  # largest (V + 2) x V one-token-context table kept for distributions (V <= ~5800)
ARPA_ZERO = -99.0  # log10 probability ARPA files use for "never"


class NgramMeta(BaseModel):
    """The settings a saved model was built with (stored inside the .npz)."""

    model_config = ConfigDict(extra="forbid")
    format_version: int
    order: int
    vocab_size: int
    eot: int | None
    discount: str  # "modified" or a fixed D
    prune: int
    interpolate: bool


@dataclass(frozen=True)
class OrderCounts:
    """The unique n-grams of one order n >= 2, from one pass over the stream."""

    keys: np.ndarray  # int64[G], sorted: context id * W + word
    raw: np.ndarray  # int64[G]: occurrences
    suffix: np.ndarray  # int64[G]: id of the (n-1)-gram of the last n-1 tokens
    opening: (
        np.ndarray
    )  # int64[G]: occurrences at a story (or stream) start, which no token extends left


class KneserNey:
    """A smoothed n-gram model over token ids 0..vocab_size-1. Build with `KneserNey.build`."""

    def __init__(
        self,
        meta: NgramMeta,
        discounts: np.ndarray,
        keys: list[np.ndarray],
        logp: list[np.ndarray],
        backoff: list[np.ndarray],
    ) -> None:
        self.meta = meta
        self.discounts = discounts  # float64[order, 3]: D1, D2, D3+ of each order
        self.keys = keys  # per order: int64 sorted keys (order 1: arange(W))
        self.logp = logp  # per order: float64 ln p of each n-gram (order 1: BOS is -inf)
        self.backoff = backoff  # per order < N: float64 ln backoff weight as a context (0: none)
        self._tables: dict[
            str, np.ndarray
        ] = {}  # dtype name -> one-token-context table, built on first use

    @property
    def order(self) -> int:
        return self.meta.order

    @property
    def vocab_size(self) -> int:
        return self.meta.vocab_size

    @property
    def eot(self) -> int | None:
        return self.meta.eot

    @property
    def width(self) -> int:
        return self.meta.vocab_size + 1

    def ngram_counts(self) -> list[int]:
        """How many n-grams each order stores (order 1 counts BOS)."""
        return [len(keys) for keys in self.keys]

    # ----------------------------------------------------------------------------------------
    # Building

    @classmethod
    def build(
        cls,
        tokens: np.ndarray,
        order: int,
        vocab_size: int,
        discount: str | float = "modified",
        prune: int = 0,
        *,
        eot: int | None = None,
        interpolate: bool = True,
    ) -> "KneserNey":
        """Count `tokens` (a stream of ids) and smooth with Kneser-Ney.

        discount: "modified" (D1, D2, D3+ per order from counts of counts, Chen & Goodman) or a
        fixed D in (0, 1) for every count and order. prune: contexts seen at most this many times
        keep no n-grams of their own (their mass backs off). interpolate: False gives backoff KN.
        """
        meta = NgramMeta(
            format_version=FORMAT_VERSION,
            order=order,
            vocab_size=vocab_size,
            eot=eot,
            discount=_discount_name(discount),
            prune=prune,
            interpolate=interpolate,
        )
        _check_settings(meta)
        stream = _checked_stream(tokens, vocab_size, "build")
        if len(stream) < 2:
            raise UserError(f"an n-gram model needs at least 2 tokens to count, got {len(stream)}")
        unigram_raw, counts = count_ngrams(stream, order, vocab_size, eot)
        adjusted = _adjusted_counts(unigram_raw, counts, vocab_size + 1)
        discounts = np.array([_discounts(a, discount, n + 1) for n, a in enumerate(adjusted)])
        logp, backoff = _smooth(adjusted, counts, discounts, vocab_size, interpolate)
        keys = [np.arange(vocab_size + 1, dtype=np.int64)] + [c.keys for c in counts]
        if prune > 0:
            keys, logp, backoff = _prune(
                keys, logp, backoff, _context_counts(unigram_raw, counts), prune, vocab_size + 1
            )
        return cls(meta, discounts, keys, logp, backoff)

    # ----------------------------------------------------------------------------------------
    # Queries

    def logprob_stream(self, tokens: np.ndarray) -> np.ndarray:
        """float64[L]: ln p(tokens[i] | up to order-1 previous tokens), for i >= 1.

        Element 0 is NaN: the first token has no context and is not scored. Contexts stop at the
        last eot before i (it acts as the story start); in the stream layout of the token caches
        (`[eot] story [eot] story ...`) this scores every story token and every closing eot.
        """
        stream = _checked_stream(tokens, self.vocab_size, "logprob_stream")[None, :]
        contexts = self._context_ids(stream)
        words = stream[0, 1:]
        logp = self.logp[0][words].copy()
        for k in range(1, self.order):
            context = contexts[k - 1][0, :-1]  # the k tokens before each predicted position
            found = self._lookup(k + 1, context, words)
            backed_off = np.where(
                context >= 0, logp + self.backoff[k - 1][np.maximum(context, 0)], logp
            )
            logp = np.where(found >= 0, self.logp[k][np.maximum(found, 0)], backed_off)
        return np.concatenate(([np.nan], logp))

    def distributions(self, contexts: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """[B, V] next-token probabilities after each row of `contexts` (int[B, order-1]).

        Rows are the last order-1 tokens before the predicted position, oldest first; a shorter
        context is left-padded with PAD (-1). Tokens before a PAD or before the last eot are not
        used. Every row sums to 1 over the whole vocabulary.
        """
        contexts = np.asarray(contexts, dtype=np.int64)
        if contexts.ndim != 2 or contexts.shape[1] != self.order - 1:
            raise UserError(
                f"distributions takes contexts of shape [B, {self.order - 1}], got {list(contexts.shape)}"
            )
        _check_ids(contexts, self.vocab_size, "distributions", allow_pad=True)
        ids = [ctx[:, -1] for ctx in self._context_ids(contexts)]
        return self._fill(ids, len(contexts), dtype)

    def next_token_distributions(self, tokens: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """[B, T, V]: the distribution of the token after each position of `tokens` (int[B, T]).

        Entry [b, t] uses tokens[b, :t+1] only (causal); the row start counts as a stream start.
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 2:
            raise UserError(
                f"next_token_distributions takes tokens of shape [B, T], got {list(tokens.shape)}"
            )
        _check_ids(tokens, self.vocab_size, "next_token_distributions", allow_pad=False)
        batch, length = tokens.shape
        ids = [ctx.reshape(-1) for ctx in self._context_ids(tokens)]
        return self._fill(ids, batch * length, dtype).reshape(batch, length, self.vocab_size)

    def _context_ids(self, tokens: np.ndarray) -> list[np.ndarray]:
        """For k = 1..order-1, int64[B, T]: id of the k-token context that ends at each column.

        -1 where the k tokens cross a PAD or an eot (except as their first token, then BOS) or
        run off the row start, or where that context was never seen.
        """
        span = _usable_span(
            tokens, self.eot
        )  # [B, T]: tokens a context ending at each column may use
        first = (
            tokens if self.eot is None else np.where(tokens == self.eot, self.vocab_size, tokens)
        )
        ids = [np.where(span >= 1, first, -1)]
        for k in range(2, self.order):
            previous = np.full_like(tokens, -1)
            previous[:, 1:] = ids[-1][:, :-1]
            found = self._lookup(k, previous, tokens)
            ids.append(np.where(span >= k, found, -1))
        return ids[: self.order - 1]

    def _lookup(self, order: int, context: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Ids of the n-grams (context, word) of `order` (>= 2); -1 where absent or context is -1."""
        keys = self.keys[order - 1]
        query = context * self.width + words
        at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        hit = (
            (context >= 0) & (keys[at] == query) if len(keys) else np.zeros(query.shape, dtype=bool)
        )
        return np.where(hit, at, -1)

    def _fill(
        self, contexts: list[np.ndarray], rows: int, dtype: type, table: bool = True
    ) -> np.ndarray:
        """[rows, V] distributions given, per context length k, the context ids of every row."""
        weights = [
            np.where(ids >= 0, self.backoff[k][np.maximum(ids, 0)], 0.0)
            for k, ids in enumerate(contexts)
        ]
        # scale[k]: ln of the product of backoff weights of contexts longer than k tokens.
        scale = np.zeros((self.order, rows))
        for k in range(self.order - 2, -1, -1):
            scale[k] = scale[k + 1] + weights[k]
        if table and contexts and self.width * self.vocab_size <= TABLE_ENTRIES:
            # One-token contexts have by far the most children: copy their rows from a table
            # (whose last row, id -1, is the unigram) instead of scattering them every time.
            out = self._one_token_table(dtype)[contexts[0]]
            out *= np.exp(scale[1]).astype(dtype)[:, None]
            first = 2
        else:
            unigram = np.exp(self.logp[0][: self.vocab_size]).astype(dtype)
            out = np.exp(scale[0]).astype(dtype)[:, None] * unigram[None, :]
            first = 1
        flat = out.reshape(-1)
        for k in range(first, self.order):
            row, child = _children(self.keys[k], contexts[k - 1], self.width)
            flat[row * self.vocab_size + self.keys[k][child] % self.width] = np.exp(
                self.logp[k][child] + scale[k][row]
            )
        return out

    def _one_token_table(self, dtype: type) -> np.ndarray:
        """[W + 1, V]: p(. | one-token context id) for every id (BOS included), then the unigram."""
        name = np.dtype(dtype).name
        if name not in self._tables:
            contexts = [np.arange(self.width)] + [np.full(self.width, -1)] * (self.order - 2)
            rows = self._fill(contexts, self.width, dtype, table=False)
            unigram = np.exp(self.logp[0][None, : self.vocab_size]).astype(dtype)
            self._tables[name] = np.concatenate((rows, unigram))
        return self._tables[name]

    # ----------------------------------------------------------------------------------------
    # Files

    def save(self, path: Path) -> None:
        """Write the model to `path` (.npz, format-versioned), atomically."""
        arrays = {"meta": np.array(self.meta.model_dump_json()), "discounts": self.discounts}
        for n in range(self.order):
            arrays[f"keys{n + 1}"] = self.keys[n]
            arrays[f"logp{n + 1}"] = self.logp[n]
        for n in range(self.order - 1):
            arrays[f"backoff{n + 1}"] = self.backoff[n]
        with atomic.atomic_path(Path(path)) as temp, temp.open("wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> "KneserNey":
        """Read a model written by `save`; UserError if it is missing or not such a file."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = NgramMeta.model_validate_json(str(data["meta"]))
                if meta.format_version != FORMAT_VERSION:
                    raise UserError(
                        f"{path}: n-gram format {meta.format_version}, this code reads {FORMAT_VERSION}; rebuild it"
                    )
                keys = [data[f"keys{n + 1}"] for n in range(meta.order)]
                logp = [data[f"logp{n + 1}"] for n in range(meta.order)]
                backoff = [data[f"backoff{n + 1}"] for n in range(meta.order - 1)]
                return cls(meta, data["discounts"], keys, logp, backoff)
        except FileNotFoundError as exc:
            raise UserError(f"{path}: no n-gram model there; build one first") from exc
        except (OSError, ValueError, KeyError, ValidationError, zipfile.BadZipFile) as exc:
            raise UserError(
                f"{path}: not an n-gram model file ({type(exc).__name__}); rebuild it"
            ) from exc

    def write_arpa(self, path: Path, token_names: Sequence[str] | None = None) -> None:
        """Write the model as an ARPA file, atomically; KenLM reads it and scores as `logprob_stream`.

        token_names[i] is the word written for id i (default `t<i>`): unique, no whitespace. eot is
        written `</s>` and the story start `<s>`; with no eot, `<s>` and `</s>` are placeholders
        with probability 0. `<unk>` gets probability 0: every id is in the file.
        """
        names = _arpa_names(token_names, self.vocab_size, self.eot)
        words = self._ngram_words()
        with atomic.atomic_path(Path(path)) as temp, temp.open("w", encoding="utf-8") as out:
            extra = ["<unk>"] + (["</s>"] if self.eot is None else [])
            out.write("\\data\\\n")
            for n, table in enumerate(words, start=1):
                out.write(f"ngram {n}={len(table) + (len(extra) if n == 1 else 0)}\n")
            for n, table in enumerate(words, start=1):
                out.write(f"\n\\{n}-grams:\n")
                if n == 1:
                    out.writelines(f"{ARPA_ZERO:.7f}\t{word}\n" for word in extra)
                out.writelines(self._arpa_lines(n, table, names))
            out.write("\n\\end\\\n")

    def _ngram_words(self) -> list[np.ndarray]:
        """Per order n, int64[G, n]: the order-1 ids of each stored n-gram, oldest first."""
        words = [self.keys[0][:, None]]
        for n in range(1, self.order):
            keys = self.keys[n]
            words.append(
                np.concatenate(
                    [words[-1][keys // self.width], (keys % self.width)[:, None]], axis=1
                )
            )
        return words

    def _arpa_lines(self, n: int, table: np.ndarray, names: np.ndarray) -> list[str]:
        log10p = np.where(np.isinf(self.logp[n - 1]), ARPA_ZERO, self.logp[n - 1] / math.log(10))
        grams = [" ".join(row) for row in names[table].tolist()]
        if n == self.order:
            return [f"{p:.7f}\t{gram}\n" for p, gram in zip(log10p.tolist(), grams, strict=False)]
        log10b = (self.backoff[n - 1] / math.log(10)).tolist()
        return [
            f"{p:.7f}\t{gram}\t{b:.7f}\n"
            for p, gram, b in zip(log10p.tolist(), grams, log10b, strict=False)
        ]


# ---------------------------------------------------------------------------------------------
# Checks


def _discount_name(discount: str | float) -> str:
    if discount == "modified":
        return "modified"
    if isinstance(discount, str):
        raise UserError(f"discount {discount!r}: use 'modified' or a fixed D in (0, 1)")
    return repr(float(discount))


def _check_settings(meta: NgramMeta) -> None:
    if not 1 <= meta.order <= MAX_ORDER:
        raise UserError(f"n-gram order {meta.order}: use an order from 1 to {MAX_ORDER}")
    if meta.vocab_size < 1:
        raise UserError(f"vocab_size {meta.vocab_size}: must be at least 1")
    if meta.eot is not None and not 0 <= meta.eot < meta.vocab_size:
        raise UserError(f"eot {meta.eot} is not a token id below vocab_size {meta.vocab_size}")
    if meta.discount != "modified" and not 0.0 < float(meta.discount) < 1.0:
        raise UserError(f"fixed discount {meta.discount}: must lie in (0, 1)")
    if meta.prune < 0:
        raise UserError(f"prune {meta.prune}: must be 0 (keep all) or a positive count")


def _checked_stream(tokens: np.ndarray, vocab_size: int, what: str) -> np.ndarray:
    stream = np.asarray(tokens, dtype=np.int64)
    if stream.ndim != 1:
        raise UserError(f"{what} takes a 1-D token stream, got shape {list(stream.shape)}")
    _check_ids(stream, vocab_size, what, allow_pad=False)
    return stream


def _check_ids(tokens: np.ndarray, vocab_size: int, what: str, allow_pad: bool) -> None:
    if tokens.size == 0:
        return
    low, high = int(tokens.min()), int(tokens.max())
    if high >= vocab_size or low < (PAD if allow_pad else 0):
        raise UserError(
            f"{what}: token ids must lie in [0, {vocab_size}), got {low}..{high}; was the model built for this tokenizer?"
        )


def _arpa_names(token_names: Sequence[str] | None, vocab_size: int, eot: int | None) -> np.ndarray:
    """Words for order-1 ids 0..V (BOS last), checked to be unique ARPA words."""
    names = [f"t{i}" for i in range(vocab_size)] if token_names is None else list(token_names)
    if len(names) != vocab_size:
        raise UserError(f"write_arpa needs {vocab_size} token names, got {len(names)}")
    if eot is not None:
        names[eot] = "</s>"
    names.append("<s>")
    reserved = {"<s>", "</s>", "<unk>"}
    for i, name in enumerate(names[:vocab_size]):
        if i != eot and (not name or name in reserved or any(c.isspace() for c in name)):
            raise UserError(
                f"token name {name!r} (id {i}) cannot be an ARPA word: names must be non-empty, without whitespace, not <s>, </s> or <unk>"
            )
    if len(set(names)) != len(names):
        raise UserError("token names must be unique to be ARPA words")
    return np.array(names, dtype=object)


# ---------------------------------------------------------------------------------------------
# Counting


def _usable_span(tokens: np.ndarray, eot: int | None) -> np.ndarray:
    """int64[B, T]: how many tokens, ending at each column, a context may use.

    It reaches back to the row start, to just after the last PAD, or to the last eot (included,
    as BOS); an eot column itself opens a context of one token.
    """
    columns = np.broadcast_to(np.arange(tokens.shape[1]), tokens.shape)
    start = np.where(tokens == PAD, columns + 1, 0)
    if eot is not None:
        start = np.where(tokens == eot, columns, start)
    return columns + 1 - np.maximum.accumulate(start, axis=1)


def count_ngrams(
    stream: np.ndarray, order: int, vocab_size: int, eot: int | None
) -> tuple[np.ndarray, list[OrderCounts]]:
    """The counting stage of `build`: raw unigram counts (int64[W], BOS last, never counted) and,
    for n = 2..order, the unique n-grams with their raw counts. `stream`: int64 ids below
    vocab_size, as `build` checks them."""
    width = vocab_size + 1
    # span[i]: tokens of context the prediction of stream[i] may use (0 for the first token).
    span = np.concatenate(([0], _usable_span(stream[None, :], eot)[0, :-1]))
    unigram_raw = np.bincount(stream[1:], minlength=width).astype(np.int64)
    context = stream if eot is None else np.where(stream == eot, vocab_size, stream)
    ids = stream  # ids[i]: id of the (n-1)-gram ending at i, in predicted form (eot is eot)
    counts: list[OrderCounts] = []
    for n in range(2, order + 1):
        at = np.flatnonzero(span >= n - 1)
        keys = context[at - 1]  # in place below: at 20M tokens every temporary is 160 MB
        keys *= width
        keys += stream[at]
        unique, inverse, raw, first = _rank(keys)
        opening = np.bincount(inverse[span[at] == n - 1], minlength=len(unique))
        counts.append(OrderCounts(unique, raw, ids[at[first]], opening))
        ids = np.full(len(stream), -1, dtype=np.int64)
        ids[at] = inverse
        context = ids
    return unigram_raw, counts


def _rank(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(keys) with (inverse, counts, index of one occurrence), from one sort.

    Where key and position fit one int64 together, sorting them packed is an order of magnitude
    faster than argsort (numpy's SIMD sort covers sort, not argsort, of int64).
    """
    position_bits = max(1, (len(keys) - 1).bit_length())
    if len(keys) and int(keys.max()).bit_length() + position_bits <= 63:
        packed = keys << position_bits
        packed |= np.arange(len(keys))
        packed.sort()
        ordered = packed >> position_bits
        perm = np.bitwise_and(packed, (1 << position_bits) - 1, out=packed)
    else:
        perm = np.argsort(keys)
        ordered = keys[perm]
    new = np.empty(len(keys), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    group = np.cumsum(new)
    group -= 1
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[perm] = group
    raw = np.diff(np.append(starts, len(keys)))
    return ordered[starts], inverse, raw, perm[starts]


def _adjusted_counts(
    unigram_raw: np.ndarray, counts: list[OrderCounts], width: int
) -> list[np.ndarray]:
    """Kneser-Ney counts per order: raw at the top order and for n-grams opening a story;
    below it, the number of distinct tokens seen just before (continuation counts)."""
    sizes = [width] + [len(c.keys) for c in counts]
    top = counts[-1].raw if counts else unigram_raw
    adjusted = [top]
    for n in range(len(counts) - 1, -1, -1):  # order n + 1, extended left by counts[n]
        opening = counts[n - 1].opening if n > 0 else np.zeros(width, dtype=np.int64)
        adjusted.append(np.bincount(counts[n].suffix, minlength=sizes[n]) + opening)
    return adjusted[::-1]


def _discounts(
    adjusted: np.ndarray, discount: str | float, order: int
) -> tuple[float, float, float]:
    """(D1, D2, D3+) of one order: fixed, or Chen & Goodman's estimate from counts of counts."""
    if discount != "modified":
        return (float(discount),) * 3
    n1, n2, n3, n4 = (int(np.count_nonzero(adjusted == c)) for c in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) > 0:
        y = n1 / (n1 + 2 * n2)
        estimate = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        if all(0 < d < c for c, d in enumerate(estimate, start=1)):
            return estimate
    log.warning(
        "order %d: counts of counts %s give no valid discounts; using %s",
        order,
        (n1, n2, n3, n4),
        FALLBACK_DISCOUNTS,
    )
    return FALLBACK_DISCOUNTS


def _smooth(
    adjusted: list[np.ndarray],
    counts: list[OrderCounts],
    discounts: np.ndarray,
    vocab_size: int,
    interpolate: bool,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """ln p of every n-gram and ln backoff weight of every context, order by order."""
    unigram = adjusted[0].astype(np.float64)
    total = unigram.sum()
    kept = unigram - _discount_of(adjusted[0], discounts[0])
    mass = _discount_of(adjusted[0], discounts[0]).sum() / total
    p1 = kept / total + mass / vocab_size
    p1[vocab_size] = 0.0  # BOS opens contexts only
    with np.errstate(divide="ignore"):
        logp = [np.log(p1)]
    backoff: list[np.ndarray] = []
    for n, gram in enumerate(counts, start=1):
        a, d = adjusted[n], _discount_of(adjusted[n], discounts[n])
        context = gram.keys // (vocab_size + 1)
        size = len(logp[n - 1])
        total = np.bincount(context, weights=a, minlength=size)
        spare = np.bincount(context, weights=d, minlength=size)  # discounted mass per context
        seen = total > 0
        gamma = np.divide(spare, total, out=np.zeros(size), where=seen)
        lower = np.exp(logp[n - 1][gram.suffix])
        own = (a - d) / total[context]
        if interpolate:
            p, weight = own + gamma[context] * lower, gamma
        else:
            # Backoff KN: the spare mass spreads over the lower order's tokens this context never saw.
            unseen = 1.0 - np.bincount(context, weights=lower, minlength=size)
            p, weight = (
                own,
                np.divide(gamma, np.maximum(unseen, 1e-300), out=np.zeros(size), where=seen),
            )
        logp.append(np.log(p))
        with np.errstate(divide="ignore"):
            backoff.append(np.where(seen, np.log(weight), 0.0))
    return logp, backoff


def _discount_of(adjusted: np.ndarray, discounts: np.ndarray) -> np.ndarray:
    """float64: the discount each count pays (D1, D2 or D3+; nothing for a zero count)."""
    table = np.concatenate(([0.0], discounts))
    return table[np.minimum(adjusted, 3)]


def _context_counts(unigram_raw: np.ndarray, counts: list[OrderCounts]) -> list[np.ndarray]:
    """Per order n < N, int64: how often each n-gram occurs as the context of a prediction."""
    sizes = [len(unigram_raw)] + [len(c.keys) for c in counts]
    width = len(unigram_raw)
    return [
        np.bincount(c.keys // width, weights=c.raw, minlength=sizes[n]).astype(np.int64)
        for n, c in enumerate(counts)
    ]


def _prune(
    keys: list[np.ndarray],
    logp: list[np.ndarray],
    backoff: list[np.ndarray],
    context_counts: list[np.ndarray],
    prune: int,
    width: int,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Drop the n-grams of contexts seen at most `prune` times; their mass backs off whole.

    Context counts only shrink as a context grows, so what is kept stays closed under taking
    prefixes and suffixes, as ARPA queries need.
    """
    backoff = [np.where(c > prune, b, 0.0) for c, b in zip(context_counts, backoff, strict=False)]
    new_keys, new_logp, new_backoff = [keys[0]], [logp[0]], [backoff[0]] if backoff else []
    renumber = np.arange(width, dtype=np.int64)  # old id -> new id of the order below
    for n in range(1, len(keys)):
        context = keys[n] // width
        keep = context_counts[n - 1][context] > prune
        new_keys.append(renumber[context[keep]] * width + keys[n][keep] % width)
        new_logp.append(logp[n][keep])
        if n < len(backoff):
            new_backoff.append(backoff[n][keep])
        renumber = np.cumsum(keep) - 1
    return new_keys, new_logp, new_backoff


def _children(keys: np.ndarray, contexts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, index into keys) of every n-gram whose context is contexts[row] (-1: none)."""
    low = np.searchsorted(keys, contexts * width)
    high = np.searchsorted(keys, contexts * width + width)
    sizes = np.where(contexts >= 0, high - low, 0)
    row = np.repeat(np.arange(len(contexts)), sizes)
    offsets = np.arange(len(row)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return row, np.repeat(low, sizes) + offsets
