"""Fixtures for the measurement core: the GPT-2 ranks in the environment, a real token cache."""

from pathlib import Path

import pytest

from vibe_research.lm.corpus import DataSource, load_corpus
from vibe_research.lm.tokenizer import ensure_tokenizer
from vibe_research.lm.tokens import prepare_split


@pytest.fixture
def gpt2_env(monkeypatch: pytest.MonkeyPatch, gpt2_ranks: Path) -> Path:
    monkeypatch.setenv("VIBE_GPT2_RANKS", str(gpt2_ranks))
    return gpt2_ranks


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory, tinystories: Path) -> Path:
    """A cache with bpe:4096 trained on the real TinyStories train files, both splits tokenized."""
    cache = tmp_path_factory.mktemp("cache")
    source = DataSource(source="files", train=[str(tinystories / "train*.txt")], valid=str(tinystories / "valid.txt"))
    corpus = load_corpus(source, tinystories)
    tokenizer = ensure_tokenizer("bpe:4096", cache, corpus.train.fingerprint, corpus.train.texts)
    for stories in (corpus.train, corpus.valid):
        prepare_split(stories, tokenizer, cache)
    return cache
