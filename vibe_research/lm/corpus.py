"""Where stories come from: local files, the Hugging Face hub, or the built-in synthetic generator.

Validation is always its own split (its own file or hub split), never carved from train. An
optional sealed test split (its own file; on the hub the last stories of the validation split,
disjoint from the valid ones; synthetic: its own seed stream) is scored only for the best
experiment, never read by training or by any choice.
"""

import glob
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from vibe_research.lm.errors import UserError

log = logging.getLogger(__name__)

Split = Literal["train", "valid", "test"]
SEPARATOR = "<|endoftext|>"
HUB_PROBE_TIMEOUT_S = 3.0  # `auto` asks the hub this long before it falls back to synthetic


class DataSource(BaseModel):
    """[data] in vibe-research.toml. Validation is always its own split, never carved from train."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["auto", "files", "hub", "synthetic"] = "auto"
    # files: train globs/paths and a validation path (env VIBE_DATA: a folder with train*.txt and valid.txt)
    train: list[str] = Field(default_factory=list)
    valid: str | None = None
    test: str | None = Field(default=None, description="the sealed test split's file, if any")
    text_column: str = "text"
    # hub
    hub_dataset: str = "roneneldan/TinyStories"
    hub_revision: str | None = None
    hub_train_split: str = "train"
    hub_valid_split: str = "validation"
    # the last this many stories of the validation split are the sealed test split (0: none);
    # the valid split is then the stories before them, so the two never overlap
    hub_test_stories: int = Field(default=1000, ge=0)
    # 200k stories (~40M tokens) is more than a five-minute run reads, even on a GPU, and keeps the
    # hub path to minutes.
    limit: int | None = Field(default=200_000, gt=0, description="at most this many train stories")
    # synthetic
    synthetic_train_stories: int = Field(default=20_000, gt=0)
    synthetic_valid_stories: int = Field(default=500, gt=0)
    synthetic_test_stories: int = Field(default=500, ge=0, description="0: no test split")
    seed: int = 0
    # the tokenizer `data prepare` builds when none is named
    tokenizer: str = "bpe:4096"


@dataclass(frozen=True)
class Stories:
    """One split's stories: where they came from, a content fingerprint, and batches of texts."""

    split: Split
    kind: Literal["files", "hub", "synthetic"]
    description: str
    fingerprint: str
    count: int
    batches: Callable[[int], Iterator[list[str]]]

    def texts(self) -> Iterator[str]:
        for batch in self.batches(1024):
            yield from batch


@dataclass(frozen=True)
class Corpus:
    train: Stories
    valid: Stories
    test: Stories | None = None  # sealed: scored only for the best, never used to choose


def load_corpus(source: DataSource, root: Path) -> Corpus:
    """Every split of `source`; relative file paths are relative to `root` (the workspace)."""
    if source.source == "files" or (source.source == "auto" and source.train):
        train = files_split("train", source.train, source.text_column, root, source.limit)
        test = files_split("test", [source.test], source.text_column, root) if source.test else None
        return Corpus(train, _files_valid(source, root), test)
    if source.source == "hub":
        return _hub_corpus(source)
    if source.source == "auto":
        try:
            return _hub_corpus(source)
        except UserError as exc:
            log.warning("the hub is out of reach (%s)", exc)
            log.warning(
                "USING SYNTHETIC STORIES: results are NOT TinyStories results; set [data] train/valid "
                "in vibe-research.toml or VIBE_DATA to real data"
            )
    test = synthetic_split(source, "test") if source.synthetic_test_stories else None
    return Corpus(synthetic_split(source, "train"), synthetic_split(source, "valid"), test)


def has_test_split(source: DataSource) -> bool:
    """Whether `source` defines a sealed test split (load_corpus gives it as Corpus.test)."""
    if source.source == "files" or (source.source == "auto" and source.train):
        return bool(source.test)
    if source.source == "hub":
        return source.hub_test_stories > 0
    if source.source == "synthetic":
        return source.synthetic_test_stories > 0
    return source.hub_test_stories > 0 or source.synthetic_test_stories > 0


def _hub_corpus(source: DataSource) -> Corpus:
    test = hub_split(source, "test") if source.hub_test_stories else None
    return Corpus(hub_split(source, "train"), hub_split(source, "valid"), test)


def _files_valid(source: DataSource, root: Path) -> Stories:
    if not source.valid:
        raise UserError(
            "[data] source is files but `valid` is not set: name a validation file in vibe-research.toml"
        )
    return files_split("valid", [source.valid], source.text_column, root)


def files_split(
    split: Split, patterns: list[str], text_column: str, root: Path, limit: int | None = None
) -> Stories:
    """Stories from paths or globs of .txt (`<|endoftext|>` layout), .jsonl or .parquet files; the first `limit`."""
    if not patterns:
        raise UserError(
            f"no {split} files configured: set [data] train in vibe-research.toml, or VIBE_DATA"
        )
    paths = _expand(patterns, root)
    texts: list[str] = []
    digest = hashlib.sha256(f"files:{text_column}:{limit}".encode())
    for path in paths:
        stories = read_story_file(path, text_column)
        texts.extend(stories)
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    texts = texts[:limit]
    description = ", ".join(str(path) for path in paths)
    if not texts:
        raise UserError(
            f"{description}: no stories found (empty corpus); point [data] at files that hold stories"
        )
    return Stories(
        split,
        "files",
        description,
        digest.hexdigest()[:16],
        len(texts),
        lambda size: (texts[i : i + size] for i in range(0, len(texts), size)),
    )


def _expand(patterns: list[str], root: Path) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        full = Path(pattern).expanduser()
        full = full if full.is_absolute() else root / full
        matches = sorted(Path(match) for match in glob.glob(str(full)))
        if not matches:
            raise UserError(
                f"{full}: no such file (or the glob matches nothing); fix the path in [data] or VIBE_DATA"
            )
        paths.extend(match for match in matches if match not in paths)
    return paths


def read_story_file(path: Path, text_column: str = "text") -> list[str]:
    """The stories in one file, each stripped of surrounding whitespace, empty ones dropped."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder; name the .txt, .jsonl or .parquet files inside it")
    readers = {".txt": _read_txt, ".jsonl": _read_jsonl, ".parquet": _read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise UserError(
            f"{path}: unsupported file type {path.suffix!r}; use .txt, .jsonl or .parquet"
        )
    return [story for story in (text.strip() for text in reader(path, text_column)) if story]


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (bad byte at offset {exc.start}); convert the file to UTF-8"
        ) from exc


def _read_txt(path: Path, text_column: str) -> list[str]:
    text = _decode(path)
    if text.strip() and SEPARATOR not in text:
        raise UserError(
            f"{path}: no {SEPARATOR} separators; end every story with a line {SEPARATOR} (the TinyStories layout)"
        )
    return text.split(SEPARATOR)


def _read_jsonl(path: Path, text_column: str) -> list[str]:
    texts = []
    for number, line in enumerate(_decode(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{path}:{number}: not valid JSON ({exc.msg}); write one JSON object per line"
            ) from exc
        if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
            raise UserError(
                f"{path}:{number}: no string field {text_column!r}; set [data] text_column"
            )
        texts.append(row[text_column])
    return texts


def _read_parquet(path: Path, text_column: str) -> list[str]:
    import pyarrow
    import pyarrow.parquet

    try:
        table = pyarrow.parquet.read_table(path)
    except pyarrow.ArrowInvalid as exc:
        raise UserError(f"{path}: not a readable parquet file ({exc})") from exc
    if text_column not in table.column_names:
        raise UserError(
            f"{path}: no column {text_column!r} (has {table.column_names}); set [data] text_column"
        )
    return [text for text in table.column(text_column).to_pylist() if isinstance(text, str)]


def hub_split(source: DataSource, split: Split) -> Stories:
    """A split of `source.hub_dataset` through `datasets.load_dataset`; fails fast when offline."""
    name = source.hub_train_split if split == "train" else source.hub_valid_split
    if split == "train" and source.limit:
        name = f"{name}[:{source.limit}]"
    elif split != "train" and source.hub_test_stories:
        # datasets' slice syntax: the test split is the tail of validation, valid the rest
        tail = source.hub_test_stories
        name = f"{name}[-{tail}:]" if split == "test" else f"{name}[:-{tail}]"
    _offline_unless_reachable()
    import datasets

    try:
        data = datasets.load_dataset(source.hub_dataset, split=name, revision=source.hub_revision)
    except (OSError, ValueError, ConnectionError) as exc:
        raise UserError(
            f"cannot load {source.hub_dataset} split {name} from the hub ({type(exc).__name__}: {exc}); "
            'check the network or use local files ([data] source = "files" or VIBE_DATA)'
        ) from exc
    if source.text_column not in data.column_names:
        raise UserError(
            f"{source.hub_dataset}: no column {source.text_column!r}; set [data] text_column"
        )
    column = source.text_column
    description = f"hub {source.hub_dataset} {name}" + (
        f" @ {source.hub_revision}" if source.hub_revision else ""
    )
    # datasets' own fingerprint identifies the cached arrow data (dataset, revision, split).
    fingerprint = hashlib.sha256(f"{description}:{data._fingerprint}".encode()).hexdigest()[:16]
    return Stories(
        split,
        "hub",
        description,
        fingerprint,
        len(data),
        lambda size: (batch[column] for batch in data.iter(batch_size=size)),
    )


def _offline_unless_reachable() -> None:
    """Switch datasets to offline mode (cache only) when the hub does not answer within a few seconds.

    Without this, a machine with no network waits through datasets' retries for minutes. The
    switch is an environment variable, read when datasets is imported: that happens just after.
    """
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection(
            (endpoint.hostname, endpoint.port or 443), timeout=HUB_PROBE_TIMEOUT_S
        ).close()
    except OSError:
        log.debug("%s does not answer; reading the datasets cache only", endpoint.hostname)
        os.environ["HF_HUB_OFFLINE"] = "1"


def synthetic_split(source: DataSource, split: Split) -> Stories:
    """Generated TinyStories-like stories; each split comes from its own seed stream."""
    from vibe_research.lm.synthetic import GENERATOR_VERSION, generate_stories

    count = {
        "train": source.synthetic_train_stories,
        "valid": source.synthetic_valid_stories,
        "test": source.synthetic_test_stories,
    }[split]
    stream = f"{source.seed}:{split}"
    return Stories(
        split,
        "synthetic",
        f"synthetic stories (seed {source.seed}, {count} {split})",
        hashlib.sha256(f"synthetic:{GENERATOR_VERSION}:{stream}:{count}".encode()).hexdigest()[:16],
        count,
        lambda size: (
            generate_stories(stream, start, min(size, count - start))
            for start in range(0, count, size)
        ),
    )
