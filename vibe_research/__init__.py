"""vibe-research: agent-driven ML research on five-minute TinyStories language models."""

__version__ = "0.1.0"
