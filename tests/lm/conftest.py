"""Fixtures for the measurement core: the GPT-2 ranks in the environment."""

from pathlib import Path

import pytest


@pytest.fixture
def gpt2_env(monkeypatch: pytest.MonkeyPatch, gpt2_ranks: Path) -> Path:
    monkeypatch.setenv("VIBE_GPT2_RANKS", str(gpt2_ranks))
    return gpt2_ranks


@pytest.fixture(scope="session")
def bytes_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of synthetic stories (lm/synthetic.py) in the `bytes` tokenizer: no real text is
    needed to test the evaluator's isolation, and no tokenizer has to be trained."""
    from vibe_research.lm.corpus import DataSource, load_corpus
    from vibe_research.lm.tokenizer import load_tokenizer
    from vibe_research.lm.tokens import prepare_split

    cache = tmp_path_factory.mktemp("bytes-cache")
    corpus = load_corpus(
        DataSource(source="synthetic", synthetic_train_stories=200, synthetic_valid_stories=20),
        cache,
    )
    tokenizer = load_tokenizer("bytes", cache)
    for stories in (corpus.train, corpus.valid):
        prepare_split(stories, tokenizer, cache)
    return cache
