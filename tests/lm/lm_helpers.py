"""Small shared pieces of the lm tests (a module, not conftest, so its name is unique)."""

from pathlib import Path

STORIES = [
    "Once upon a time, there was a little girl named Lily. She loved her red ball.",
    "Tom saw a big dog. \"Hello!\" he said. The dog wagged its tail, and they played all day.",
    "The sun was hot. Mia drank cold water and smiled. Café au lait was not for kids, Mom said.",
]


def write_txt(path: Path, stories: list[str]) -> Path:
    """Stories in the TinyStories layout: each story, then a line <|endoftext|>."""
    path.write_text("".join(f"{story}\n<|endoftext|>\n" for story in stories), encoding="utf-8")
    return path
