"""Token caches: each split tokenized once into a memmapped stream with a manifest.

Layout (CONTRACTS.md): `<cache>/tokens/<split>/<slug>/{tokens.bin,manifest.json}`, the stream
`[eot] story1 [eot] story2 [eot] ...`, uint16 when the vocabulary fits, else uint32. A cache is
rebuilt when its source or tokenizer fingerprint changes; the manifest is written last, so a
cache without one is never read.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from vibe_research.lm import atomic
from vibe_research.lm.corpus import Split, Stories
from vibe_research.lm.errors import UserError, validation_error_line
from vibe_research.lm.paths import cache_root, spec_slug
from vibe_research.lm.tokenizer import Tokenizer, check_spec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
BATCH_STORIES = 512  # stories encoded per call: amortises the call, keeps memory flat


class TokenManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION
    split: Split
    tokenizer: str
    tokenizer_fingerprint: str
    vocab_size: int
    eot: int
    dtype: Literal["uint16", "uint32"]
    source_kind: str
    source: str
    source_fingerprint: str
    stories: int
    tokens: int
    bytes: int  # UTF-8 bytes of the story texts (separators excluded)
    created: str

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens


@dataclass(frozen=True)
class TokenSplit:
    path: Path  # the cache folder
    manifest: TokenManifest
    tokens: np.memmap


def split_dir(split: Split, tokenizer_spec: str, cache_dir: Path | None = None) -> Path:
    return cache_root(cache_dir) / "tokens" / split / spec_slug(tokenizer_spec)


def stream_dtype(vocab_size: int) -> Literal["uint16", "uint32"]:
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def open_split(split: Split, tokenizer_spec: str, cache_dir: Path | None = None) -> TokenSplit:
    """The cached stream of `split`; UserError naming `data prepare` when it is missing or broken."""
    check_spec(tokenizer_spec)
    folder = split_dir(split, tokenizer_spec, cache_dir)
    manifest = read_manifest(folder)
    if manifest is None:
        raise UserError(
            f"no {split} tokens for {tokenizer_spec} in {folder}: "
            f"run `vibe-research data prepare --tokenizer {tokenizer_spec}`"
        )
    return TokenSplit(
        folder, manifest, np.memmap(folder / "tokens.bin", dtype=manifest.dtype, mode="r")
    )


def read_manifest(folder: Path) -> TokenManifest | None:
    """The manifest if it exists, is current, and matches the size of tokens.bin; else None."""
    manifest_file, tokens_file = folder / "manifest.json", folder / "tokens.bin"
    if not (manifest_file.is_file() and tokens_file.is_file()):
        return None
    try:
        manifest = TokenManifest.model_validate_json(manifest_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        log.warning("%s", validation_error_line(str(manifest_file), exc))
        return None
    expected = manifest.tokens * np.dtype(manifest.dtype).itemsize
    if manifest.format_version != FORMAT_VERSION or tokens_file.stat().st_size != expected:
        return None
    return manifest


def prepare_split(
    stories: Stories,
    tokenizer: Tokenizer,
    cache_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[TokenSplit, bool]:
    """Tokenize `stories` into the cache unless an up-to-date cache exists. Returns (split, built)."""
    folder = split_dir(stories.split, tokenizer.spec, cache_dir)
    current = read_manifest(folder)
    if (
        current is not None
        and current.source_fingerprint == stories.fingerprint
        and current.tokenizer_fingerprint == tokenizer.fingerprint
    ):
        return open_split(stories.split, tokenizer.spec, cache_dir), False
    # The old manifest goes first: a crash below leaves no manifest, never one describing other tokens.
    (folder / "manifest.json").unlink(missing_ok=True)
    dtype = stream_dtype(tokenizer.vocab_size)
    with atomic.atomic_path(folder / "tokens.bin") as temp:
        count, tokens, text_bytes = _write_stream(stories, tokenizer, temp, dtype, progress)
        if count == 0:
            raise UserError(f"{stories.description}: no stories found (empty corpus)")
    manifest = TokenManifest(
        split=stories.split,
        tokenizer=tokenizer.spec,
        tokenizer_fingerprint=tokenizer.fingerprint,
        vocab_size=tokenizer.vocab_size,
        eot=tokenizer.eot,
        dtype=dtype,
        source_kind=stories.kind,
        source=stories.description,
        source_fingerprint=stories.fingerprint,
        stories=count,
        tokens=tokens,
        bytes=text_bytes,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    atomic.write_text(folder / "manifest.json", manifest.model_dump_json(indent=2))
    log.info(
        "%s %s: %d stories, %d tokens in %s", stories.split, tokenizer.spec, count, tokens, folder
    )
    return open_split(stories.split, tokenizer.spec, cache_dir), True


def _write_stream(
    stories: Stories,
    tokenizer: Tokenizer,
    path: Path,
    dtype: str,
    progress: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    """Write `[eot] s1 [eot] s2 [eot] ...` to `path`; return (stories, tokens, story bytes)."""
    count, tokens, text_bytes = 0, 0, 0
    with path.open("wb") as out:
        for array, batch_stories, batch_bytes in encode_stream(stories, tokenizer, dtype):
            out.write(array.tobytes())
            count, tokens, text_bytes = (
                count + batch_stories,
                tokens + len(array),
                text_bytes + batch_bytes,
            )
            if progress is not None:
                progress(batch_stories)
    return count, tokens, text_bytes


def encode_stream(
    stories: Stories, tokenizer: Tokenizer, dtype: str
) -> Iterator[tuple[np.ndarray, int, int]]:
    """The stream in chunks: (ids, stories in the chunk, their UTF-8 bytes); the first chunk starts with eot."""
    table = tokenizer.token_bytes
    yield np.array([tokenizer.eot], dtype=dtype), 0, 0
    for batch in stories.batches(BATCH_STORIES):
        ids = [[*story, tokenizer.eot] for story in tokenizer.encode_batch(batch)]
        array = np.fromiter((i for story in ids for i in story), dtype=dtype)
        batch_bytes = sum(len(text.encode("utf-8")) for text in batch)
        # A lossless tokenizer's ids stand for exactly the text's bytes; bits per byte depends on it.
        if int(table[array].sum()) != batch_bytes:
            raise RuntimeError(f"{tokenizer.spec} lost bytes while encoding {stories.description}")
        yield array, len(batch), batch_bytes
