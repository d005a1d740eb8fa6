"""The runner tests share the sandbox tests' toy workspace (tests/sandbox/toy.py and entries/)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "sandbox"))

from toy import cache_template, home, workspace  # noqa: F401
