"""The prompt templates: markdown files in vibe_research/prompts/, filled with string.Template."""

from functools import cache
from importlib import resources
from string import Template


@cache
def _template(name: str) -> Template:
    return Template(
        resources.files("vibe_research").joinpath("prompts", name).read_text(encoding="utf-8")
    )


def render(template: str, **values: str) -> str:
    """`template` with every `$key` filled; a missing value is a bug, so it raises KeyError."""
    return _template(template).substitute(values).strip() + "\n"
