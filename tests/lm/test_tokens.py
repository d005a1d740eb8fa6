"""Token caches: stream layout, manifest, reuse, rebuild on changed inputs, atomicity."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lm_helpers import STORIES, write_txt

from vibe_research.lm.corpus import Stories, files_split
from vibe_research.lm.errors import UserError
from vibe_research.lm.tokenizer import load_tokenizer
from vibe_research.lm.tokens import open_split, prepare_split, split_dir, stream_dtype


def stories_in(tmp_path: Path, stories: list[str]) -> Stories:
    return files_split("train", [str(write_txt(tmp_path / "train.txt", stories))], "text", tmp_path)


def test_stream_layout_and_manifest(tmp_path: Path) -> None:
    tokenizer = load_tokenizer("bytes")
    split, built = prepare_split(stories_in(tmp_path, STORIES), tokenizer, tmp_path / "cache")
    expected = [tokenizer.eot]
    for story in STORIES:
        expected += [*story.encode("utf-8"), tokenizer.eot]
    assert built and split.tokens.tolist() == expected
    assert split.tokens.dtype == np.uint16 and isinstance(split.tokens, np.memmap)
    manifest = split.manifest
    assert (manifest.stories, manifest.tokens, manifest.tokenizer) == (3, len(expected), "bytes")
    assert manifest.bytes == sum(len(story.encode("utf-8")) for story in STORIES)
    assert split.path == tmp_path / "cache" / "tokens" / "train" / "bytes"
    assert open_split("train", "bytes", tmp_path / "cache").manifest == manifest


def test_reused_then_rebuilt_when_source_or_tokenizer_changes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, built = prepare_split(stories_in(tmp_path, STORIES), load_tokenizer("bytes"), cache)
    assert built
    again, built = prepare_split(stories_in(tmp_path, STORIES), load_tokenizer("bytes"), cache)
    assert not built and again.manifest.created == first.manifest.created
    changed, built = prepare_split(
        stories_in(tmp_path, STORIES[:2]), load_tokenizer("bytes"), cache
    )
    assert built and changed.manifest.stories == 2
    tokenizer = load_tokenizer("bytes")
    tokenizer.fingerprint = (
        "another-tokenizer"  # as if the same spec had been retrained on other text
    )
    _, built = prepare_split(stories_in(tmp_path, STORIES[:2]), tokenizer, cache)
    assert built


def test_missing_cache_names_data_prepare(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="vibe-research data prepare --tokenizer bpe:4096"):
        open_split("valid", "bpe:4096", tmp_path)


def test_cache_dir_from_env_or_workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIBE_CACHE_DIR", str(tmp_path / "env-cache"))
    assert (
        split_dir("train", "bpe:4096") == tmp_path / "env-cache" / "tokens" / "train" / "bpe-4096"
    )
    monkeypatch.delenv("VIBE_CACHE_DIR")
    (tmp_path / "vibe-research.toml").write_text("")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    assert split_dir("valid", "gpt2") == tmp_path / ".vibe" / "cache" / "tokens" / "valid" / "gpt2"


def test_wide_vocabularies_use_uint32() -> None:
    assert (stream_dtype(65536), stream_dtype(65537)) == ("uint16", "uint32")


def test_a_failure_midway_leaves_no_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = stories_in(tmp_path, STORIES)
    prepare_split(good, load_tokenizer("bytes"), cache)

    def batches(size: int) -> Iterator[list[str]]:
        yield STORIES[:1]
        raise OSError("disk vanished")

    broken = Stories("train", "files", "broken", "other", 2, batches)
    with pytest.raises(OSError, match="disk vanished"):
        prepare_split(broken, load_tokenizer("bytes"), cache)
    folder = cache / "tokens" / "train" / "bytes"
    assert sorted(path.name for path in folder.iterdir()) == [
        "tokens.bin"
    ]  # old tokens, no manifest, no temp
    with pytest.raises(UserError, match="data prepare"):
        open_split("train", "bytes", cache)


def test_real_tinystories_bpe_cache(real_cache: Path) -> None:
    train, valid = (
        open_split("train", "bpe:4096", real_cache),
        open_split("valid", "bpe:4096", real_cache),
    )
    assert (train.manifest.stories, valid.manifest.stories) == (4709, 500)
    assert valid.manifest.bytes == 403_555
    assert 3.5 < valid.manifest.bytes_per_token < 4.5
    eot = valid.manifest.eot
    assert (
        valid.tokens[0] == eot
        and valid.tokens[-1] == eot
        and int((valid.tokens == eot).sum()) == 501
    )
    assert not set(np.unique(train.tokens)) - set(range(4096))
