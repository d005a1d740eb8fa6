"""Fixtures of the research tests."""

import pytest
from research_records import make_records

from vibe_research.research.state import ledger as L


@pytest.fixture
def records() -> list[L.Record]:
    """A baseline, a kept change and a discarded one, with runs, judgements and picks."""
    return make_records()
