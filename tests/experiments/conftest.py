"""Fixtures of the experiment tests."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bpe_cache(real_cache: Path) -> Path:
    """The session's real bpe:4096 token cache (tests/conftest.py)."""
    return real_cache
