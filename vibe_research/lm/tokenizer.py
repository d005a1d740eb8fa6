"""Tokenizers, all served as tiktoken encodings: `gpt2`, `bpe:N` (trained here with rustbpe), `bytes`.

`<|endoftext|>` (eot) separates stories in every tokenizer. `token_bytes` maps each id to the
number of UTF-8 bytes it stands for (specials 0), which is what bits per byte divides by.
"""

import base64
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

import numpy as np
import tiktoken
from pydantic import BaseModel, ConfigDict, ValidationError

from vibe_research.lm import atomic
from vibe_research.lm.errors import UserError, validation_error_line
from vibe_research.lm.paths import cache_root, spec_slug

log = logging.getLogger(__name__)

EOT_TEXT = "<|endoftext|>"
GPT2_RANKS_ENV = "VIBE_GPT2_RANKS"
# sha256 of r50k_base.tiktoken, the hash tiktoken itself checks for the GPT-2 ranks.
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# The GPT-2 split pattern; `bytes` uses it too so long texts split into short pieces.
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
BPE_SPEC = re.compile(r"bpe:(\d+)")
BPE_MIN, BPE_MAX = 257, 1 << 20  # 256 byte tokens + eot at least; ids must fit a uint32 stream
METADATA_VERSION = 1


class BpeMetadata(BaseModel):
    """`<cache>/tokenizers/<slug>.json`, written beside the ranks file of a trained BPE."""

    model_config = ConfigDict(extra="forbid")
    format_version: int = METADATA_VERSION
    spec: str
    pattern: str
    vocab_size: int
    source_fingerprint: str
    ranks_sha256: str


class Tokenizer:
    """A tiktoken encoding with the project's spec and the tables bits-per-byte needs."""

    def __init__(self, spec: str, ranks: dict[bytes, int], pattern: str) -> None:
        self.spec = spec
        self.encoding = tiktoken.Encoding(
            name=spec_slug(spec),
            pat_str=pattern,
            mergeable_ranks=ranks,
            special_tokens={EOT_TEXT: len(ranks)},
        )
        self.fingerprint = _fingerprint(ranks, pattern)

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    @property
    def eot(self) -> int:
        return self.encoding.eot_token

    def encode(self, text: str) -> list[int]:
        """Ids of `text`; `<|endoftext|>` inside the text is ordinary text, not the special."""
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(texts)

    def decode(self, ids: Iterable[int]) -> str:
        return self.encoding.decode(list(ids), errors="replace")

    @cached_property
    def token_bytes(self) -> np.ndarray:
        """int64[V]: UTF-8 bytes each id stands for; the eot special stands for 0 bytes."""
        table = np.array(
            [len(self.encoding.decode_single_token_bytes(i)) for i in range(self.vocab_size)],
            dtype=np.int64,
        )
        table[self.eot] = 0
        return table


def _fingerprint(ranks: dict[bytes, int], pattern: str) -> str:
    digest = hashlib.sha256(pattern.encode())
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        digest.update(rank.to_bytes(4, "little") + len(token).to_bytes(2, "little") + token)
    return digest.hexdigest()[:16]


def check_spec(spec: str) -> str:
    """Return `spec` if it names a tokenizer, else raise UserError saying which ones exist."""
    match = BPE_SPEC.fullmatch(spec)
    if spec in {"gpt2", "bytes"} or (match and BPE_MIN <= int(match.group(1)) <= BPE_MAX):
        return spec
    raise UserError(
        f"unknown tokenizer spec {spec!r}: use gpt2, bytes, or bpe:N with N from {BPE_MIN} to {BPE_MAX} (e.g. bpe:4096)"
    )


def load_tokenizer(spec: str, cache_dir: Path | None = None) -> Tokenizer:
    """The tokenizer `spec` names. `bpe:N` must have been trained by `vibe-research data prepare`."""
    check_spec(spec)
    if spec == "gpt2":
        return Tokenizer(spec, *_gpt2_ranks())
    if spec == "bytes":
        return Tokenizer(spec, {bytes([i]): i for i in range(256)}, GPT2_PATTERN)
    ranks_file, metadata = _read_bpe_metadata(spec, cache_root(cache_dir))
    if metadata is None:
        raise UserError(
            f"tokenizer {spec} is not trained yet: run `vibe-research data prepare --tokenizer {spec}`"
        )
    return _load_bpe(spec, ranks_file, metadata)


def ensure_tokenizer(
    spec: str,
    cache_dir: Path | None,
    source_fingerprint: str,
    train_texts: Callable[[], Iterable[str]],
) -> Tokenizer:
    """Load `spec`, first training it on `train_texts()` if it is a BPE missing or fitted to other data."""
    check_spec(spec)
    if not spec.startswith("bpe:"):
        return load_tokenizer(spec, cache_dir)
    ranks_file, metadata = _read_bpe_metadata(spec, cache_root(cache_dir))
    if metadata is not None and metadata.source_fingerprint == source_fingerprint:
        return _load_bpe(spec, ranks_file, metadata)
    return train_bpe(spec, train_texts(), ranks_file, source_fingerprint)


def train_bpe(
    spec: str, texts: Iterable[str], ranks_file: Path, source_fingerprint: str
) -> Tokenizer:
    """Train a byte-level BPE of vocab N (N-1 ranks + eot) with rustbpe; save ranks and metadata atomically."""
    import rustbpe

    vocab_size = int(spec.removeprefix("bpe:"))
    # rustbpe logs every percent of its merges at INFO; one line from us says the same.
    logging.getLogger("rustbpe").setLevel(max(logging.WARNING, logging.getLogger().level))
    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(iter(texts), vocab_size - 1)
    ranks = {bytes(token): rank for token, rank in trainer.get_mergeable_ranks()}
    if len(ranks) < vocab_size - 1:
        # Small corpora (the synthetic stories) run out of pairs to merge: the tokenizer is smaller
        # than asked, and every model built on it reads its real size from the token cache.
        log.warning(
            "%s: the training text supports only %d tokens, so this tokenizer has %d; more text gives all %d",
            spec,
            len(ranks) + 1,
            len(ranks) + 1,
            vocab_size,
        )
        vocab_size = len(ranks) + 1
    text = "".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in ranks.items())
    atomic.write_text(ranks_file, text)
    metadata = BpeMetadata(
        spec=spec,
        pattern=trainer.get_pattern(),
        vocab_size=vocab_size,
        source_fingerprint=source_fingerprint,
        ranks_sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
    atomic.write_text(ranks_file.with_suffix(".json"), metadata.model_dump_json(indent=2))
    log.info("trained %s (%d tokens) into %s", spec, vocab_size, ranks_file)
    return Tokenizer(spec, ranks, metadata.pattern)


def _read_bpe_metadata(spec: str, root: Path) -> tuple[Path, BpeMetadata | None]:
    ranks_file = root / "tokenizers" / f"{spec_slug(spec)}.tiktoken"
    meta_file = ranks_file.with_suffix(".json")
    if not (ranks_file.is_file() and meta_file.is_file()):
        return ranks_file, None
    try:
        return ranks_file, BpeMetadata.model_validate_json(meta_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        line = validation_error_line(str(meta_file), exc)
        raise UserError(f"{line}; delete it and run `vibe-research data prepare`") from exc


def _load_bpe(spec: str, ranks_file: Path, metadata: BpeMetadata) -> Tokenizer:
    from tiktoken.load import load_tiktoken_bpe

    try:
        ranks = load_tiktoken_bpe(str(ranks_file), expected_hash=metadata.ranks_sha256)
    except ValueError as exc:
        raise UserError(
            f"{ranks_file}: corrupt ranks file ({exc}); delete it and run `vibe-research data prepare`"
        ) from exc
    return Tokenizer(spec, ranks, metadata.pattern)


def _gpt2_ranks() -> tuple[dict[bytes, int], str]:
    """GPT-2's ranks from VIBE_GPT2_RANKS if set, else through tiktoken (TIKTOKEN_CACHE_DIR or the network)."""
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext import openai_public

    explicit = os.environ.get(GPT2_RANKS_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(
                f"{GPT2_RANKS_ENV}={explicit}: no such file; point it at r50k_base.tiktoken"
            )
        try:
            return load_tiktoken_bpe(
                str(path), expected_hash=GPT2_RANKS_SHA256
            ), openai_public.r50k_pat_str
        except ValueError as exc:
            raise UserError(f"{path}: not the GPT-2 r50k_base ranks ({exc})") from exc
    try:
        params = openai_public.r50k_base()
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot load the GPT-2 tokenizer ({type(exc).__name__}); without network set {GPT2_RANKS_ENV} to a local "
            "r50k_base.tiktoken, or TIKTOKEN_CACHE_DIR to a tiktoken cache holding it"
        ) from exc
    return params["mergeable_ranks"], params["pat_str"]
