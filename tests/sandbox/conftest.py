"""Fixtures for the sandbox tests live in toy.py, shared with tests/runs."""

from toy import cache_template, home, workspace  # noqa: F401
