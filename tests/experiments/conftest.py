"""Fixtures of the experiment tests: the real bpe:4096 token cache (defined in ngram_fixtures)."""

from ngram_fixtures import bpe_cache  # noqa: F401 (re-exported so every test here can request it)
