"""Fixtures for the measurement core: real tokenizers, real token caches, the real CLI as a subprocess."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vibe_research.lm.corpus import DataSource, load_corpus
from vibe_research.lm.tokenizer import ensure_tokenizer
from vibe_research.lm.tokens import prepare_split

VIBE = Path(sys.executable).parent / "vibe-research"
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


@pytest.fixture
def vibe(monkeypatch: pytest.MonkeyPatch) -> Callable[..., subprocess.CompletedProcess]:
    """Run the installed `vibe-research` console script: vibe(*args, cwd=..., env={...})."""

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        clean = {k: v for k, v in os.environ.items() if k not in {"VIBE_CACHE_DIR", "VIBE_DATA", "VIBE_DEBUG"}}
        return subprocess.run([str(VIBE), *args], cwd=cwd, env=clean | (env or {}), capture_output=True, text=True,
                              timeout=120)

    return run
