"""The heuristic judge's reference: a Kneser-Ney model of the training stories.

Fluency is measured against what training stories look like, with story boundaries (eot) in
the model, so it also scores how a story opens and how it ends. The model is built from the
first part of the token stream; typical fluency is measured on a held-out tail, so a good
sample is compared with unseen text and not with memorised text.
"""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vibe_research.lm.errors import UserError

if TYPE_CHECKING:
    from vibe_research.lm.ngram import KneserNey
    from vibe_research.lm.tokenizer import Tokenizer

log = logging.getLogger(__name__)

ORDER = 3  # trigrams: enough for local fluency, sparse enough to punish scrambled text
MAX_TOKENS = 2_000_000  # of training stream: more adds seconds to the build and little accuracy
HELD_OUT = 0.05  # share of the stream kept back to measure typical fluency
OPENING_TOKENS = 4  # a story's first tokens, scored apart: any opening is unlikely to a trigram


@dataclass(frozen=True)
class Fluency:
    """Natural-log probabilities under the reference, in three places."""

    body: float  # of the whole story, per UTF-8 byte (a unit that does not depend on the tokenizer)
    opening: float  # mean per token of the first tokens after the story boundary
    closing: float  # of the story boundary after the last token


@dataclass(frozen=True)
class Reference:
    model: "KneserNey"
    tokenizer: "Tokenizer"
    id: str  # names the tokenizer, order and data, so judge caches key on it
    typical: Fluency  # of held-out training stories

    def fluency(self, text: str) -> Fluency:
        ids = [self.tokenizer.eot, *self.tokenizer.encode(text), self.tokenizer.eot]
        logp = self.model.logprob_stream(np.asarray(ids, dtype=np.int64))[1:]
        story = logp[:-1]
        closing = float(logp[-1])
        if len(story) == 0:
            return Fluency(body=closing, opening=closing, closing=closing)
        per_byte = float(story.sum()) / max(1, len(text.encode("utf-8")))
        return Fluency(body=per_byte, opening=float(story[:OPENING_TOKENS].mean()), closing=closing)


def build_reference(
    tokens: np.ndarray, tokenizer: "Tokenizer", order: int = ORDER, max_tokens: int = MAX_TOKENS
) -> Reference:
    """Build from a token stream in the cache layout (`[eot] story [eot] story ...`)."""
    from vibe_research.lm.ngram import KneserNey

    stream = np.asarray(tokens[:max_tokens], dtype=np.int64)
    if len(stream) < 1000:
        raise UserError(
            f"the heuristic judge's reference needs at least 1000 training tokens, got {len(stream)}; "
            "prepare more training data with `vibe-research data prepare`"
        )
    split = _story_boundary(stream, int(len(stream) * (1 - HELD_OUT)), tokenizer.eot)
    model = KneserNey.build(stream[:split], order, tokenizer.vocab_size, eot=tokenizer.eot)
    typical = _typical_fluency(model, stream[split:], tokenizer)
    digest = hashlib.sha256(stream.tobytes()).hexdigest()[:12]
    reference_id = f"kn{order}-{tokenizer.spec.replace(':', '')}-{digest}"
    log.debug("judge reference %s: %d tokens, held-out %s", reference_id, split, typical)
    return Reference(model=model, tokenizer=tokenizer, id=reference_id, typical=typical)


def _typical_fluency(model: "KneserNey", held_out: np.ndarray, tokenizer: "Tokenizer") -> Fluency:
    """Fluency of unseen training stories, measured the way `Reference.fluency` measures a sample."""
    words = held_out[1:]
    logp = model.logprob_stream(held_out)[1:]  # logp[i] scores words[i]
    is_eot = words == tokenizer.eot
    story = ~is_eot
    body = float(logp[story].sum()) / float(tokenizer.token_bytes[words[story]].sum())
    # the first OPENING_TOKENS of each story: positions after the stream start or after an eot
    since_start = np.arange(len(words)) - np.maximum.accumulate(
        np.where(is_eot, np.arange(len(words)), -1)
    )
    opening = story & (since_start <= OPENING_TOKENS)
    return Fluency(
        body=body, opening=float(logp[opening].mean()), closing=float(logp[is_eot].mean())
    )


def _story_boundary(stream: np.ndarray, near: int, eot: int) -> int:
    """The index of the first eot at or after `near`, so the held-out part starts a story."""
    after = np.flatnonzero(stream[near:] == eot)
    return near + int(after[0]) if len(after) else near


def reference_from_cache(tokenizer_spec: str, cache_dir: Path | None = None) -> Reference:
    """The reference for a workspace: its prepared training tokens under `tokenizer_spec`."""
    from vibe_research.lm.tokenizer import load_tokenizer
    from vibe_research.lm.tokens import open_split

    tokenizer = load_tokenizer(tokenizer_spec, cache_dir)
    return build_reference(open_split("train", tokenizer_spec, cache_dir).tokens, tokenizer)


def reference_from_texts(texts: list[str], tokenizer: "Tokenizer") -> Reference:
    """Build from raw stories (one story per item)."""
    ids = [tokenizer.eot]
    for text in texts:
        ids += tokenizer.encode(text)
        ids.append(tokenizer.eot)
        if len(ids) >= MAX_TOKENS:
            break
    return build_reference(np.asarray(ids, dtype=np.int64), tokenizer)
