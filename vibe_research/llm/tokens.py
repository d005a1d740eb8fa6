"""Counting prompt tokens offline with the GPT-2 BPE (tiktoken), never downloading it.

The ranks file is taken from VIBE_GPT2_RANKS (a path to r50k_base.tiktoken), else from
TIKTOKEN_CACHE_DIR where tiktoken caches it. Without either, counts fall back to UTF-8 bytes / 4,
the usual size of an English BPE token, and a warning says so once.
"""

import base64
import hashlib
import logging
import os
from functools import cache
from pathlib import Path

import tiktoken
from tiktoken_ext.openai_public import r50k_pat_str

from vibe_research.lm.errors import UserError

log = logging.getLogger(__name__)

R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
BYTES_PER_TOKEN = 4


def _ranks_file() -> Path | None:
    if os.environ.get("VIBE_GPT2_RANKS"):
        return Path(os.environ["VIBE_GPT2_RANKS"]).expanduser()
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        # tiktoken names its cache entries by the sha1 of the download URL.
        cached = Path(os.environ["TIKTOKEN_CACHE_DIR"]) / hashlib.sha1(R50K_URL.encode()).hexdigest()
        return cached if cached.is_file() else None
    return None


def gpt2_encoding() -> tiktoken.Encoding | None:
    """The GPT-2 encoding from a local ranks file, or None (with one warning) when there is none."""
    path = _ranks_file()
    if path is None or not path.is_file():
        _warn_estimating()
        return None
    return _encoding_from(path)


@cache
def _warn_estimating() -> None:
    log.warning(
        "no GPT-2 ranks file (set VIBE_GPT2_RANKS to r50k_base.tiktoken): counting prompt tokens as UTF-8 bytes / %d",
        BYTES_PER_TOKEN,
    )


@cache
def _encoding_from(path: Path) -> tiktoken.Encoding:
    # Parsed here rather than by tiktoken.load, which would copy the file into its cache.
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != R50K_SHA256:
        raise UserError(f"{path} is not the GPT-2 r50k_base.tiktoken ranks file (sha256 differs); point VIBE_GPT2_RANKS at the right file")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


def count_tokens(text: str) -> int:
    encoding = gpt2_encoding()
    if encoding is None:
        return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)
    return len(encoding.encode(text, disallowed_special=()))


def count_message_tokens(messages: list[dict[str, str]]) -> int:
    """Tokens of a chat prompt: the contents plus the few tokens each message's framing costs."""
    return sum(count_tokens(m["content"]) + 4 for m in messages) + 2
