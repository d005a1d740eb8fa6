"""Fixtures for the measurement core: the GPT-2 ranks in the environment."""

from pathlib import Path

import pytest


@pytest.fixture
def gpt2_env(monkeypatch: pytest.MonkeyPatch, gpt2_ranks: Path) -> Path:
    monkeypatch.setenv("VIBE_GPT2_RANKS", str(gpt2_ranks))
    return gpt2_ranks
