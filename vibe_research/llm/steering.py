"""The researcher's steering: the text of the Steering section of notes/README.md, and what the
offline planner can act on in it. An LLM reads the whole text; the planner follows three kinds
of line, one per line, case-insensitive:

    avoid: optimizer, depth      moves whose family, name or keywords match are not proposed
    prefer: fusion               matching moves come first
    budget: 20 min               no move whose runs would train longer than this (also `1200 s`)
"""

import re
from dataclasses import dataclass

_LINE = re.compile(
    r"^\s*[-*]?\s*(avoid|prefer|budget)\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE
)
_BUDGET = re.compile(
    r"^(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?|h|hours?)?$", re.IGNORECASE
)


@dataclass(frozen=True)
class Steering:
    text: str
    avoid: tuple[str, ...] = ()
    prefer: tuple[str, ...] = ()
    max_minutes: float | None = None  # of training per experiment, all its runs together


def parse_steering(text: str) -> Steering:
    avoid: list[str] = []
    prefer: list[str] = []
    max_minutes = None
    for match in _LINE.finditer(text):
        kind, value = match.group(1).lower(), match.group(2)
        if kind == "budget":
            max_minutes = _minutes(value)
            continue
        terms = [term.strip().lower() for term in re.split(r"[,;]", value) if term.strip()]
        (avoid if kind == "avoid" else prefer).extend(terms)
    return Steering(text=text, avoid=tuple(avoid), prefer=tuple(prefer), max_minutes=max_minutes)


def _minutes(value: str) -> float | None:
    found = _BUDGET.match(value.strip())
    if found is None:
        return None
    number, unit = float(found.group(1)), (found.group(2) or "min").lower()
    if unit.startswith("s"):
        return number / 60
    if unit.startswith("h"):
        return number * 60
    return number


def matches(term: str, family: str, title: str, words: tuple[str, ...]) -> bool:
    """Whether a steering term names a move: its family, a word of its title, or a keyword."""
    term = term.lower()
    title_words = set(re.findall(r"[a-z0-9_]+", title.lower()))
    return (
        term == family
        or term in title_words
        or term in (w.lower() for w in words)
        or (" " in term and term in title.lower())
    )
