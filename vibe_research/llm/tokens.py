"""Counting prompt tokens offline with the GPT-2 BPE, never downloading it.

The encoding is lm.tokenizer's `gpt2`, used only when its ranks file is at hand: VIBE_GPT2_RANKS
(a path to r50k_base.tiktoken) or a TIKTOKEN_CACHE_DIR that holds it. Otherwise counts fall back
to UTF-8 bytes / 4, the usual size of an English BPE token, and a warning says so once.
"""

import hashlib
import logging
import os
from functools import cache
from pathlib import Path

from vibe_research.lm.tokenizer import GPT2_RANKS_ENV, Tokenizer, load_tokenizer

log = logging.getLogger(__name__)

R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
BYTES_PER_TOKEN = 4  # English averages about 4 bytes per BPE token: the estimate without tiktoken


def gpt2_encoding() -> Tokenizer | None:
    """The GPT-2 tokenizer from a local ranks file, or None (with one warning) when there is none."""
    explicit = os.environ.get(GPT2_RANKS_ENV)
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    # tiktoken names its cache entries by the sha1 of the download URL.
    cached = (
        bool(cache_dir)
        and (Path(cache_dir) / hashlib.sha1(R50K_URL.encode()).hexdigest()).is_file()
    )
    if not explicit and not cached:
        _warn_estimating()
        return None
    return _gpt2(explicit, cache_dir)


@cache
def _gpt2(explicit: str | None, cache_dir: str | None) -> Tokenizer:
    """Loaded once per place the ranks come from (the arguments are only the cache key)."""
    return load_tokenizer("gpt2")


@cache
def _warn_estimating() -> None:
    log.warning(
        "no GPT-2 ranks file (set %s to r50k_base.tiktoken): counting prompt tokens as UTF-8 bytes / %d",
        GPT2_RANKS_ENV,
        BYTES_PER_TOKEN,
    )


def count_tokens(text: str) -> int:
    tokenizer = gpt2_encoding()
    if tokenizer is None:
        return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)
    return len(tokenizer.encode(text))


def count_message_tokens(messages: list[dict[str, str]]) -> int:
    """Tokens of a chat prompt: the contents plus the few tokens each message's framing costs."""
    return sum(count_tokens(m["content"]) + 4 for m in messages) + 2
