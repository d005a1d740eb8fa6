"""`python -m vibe_research` is `vibe-research`."""

from vibe_research.cli import main

main()
