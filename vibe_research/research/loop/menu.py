"""The menu after each turn: the keys the researcher answers with, parsed.

Parsing is a pure function so the keys are tested without a terminal; the CLI shows the menu
(cli/console.py) and the pexpect test drives the real thing.
"""

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Choice:
    action: Literal["pick", "idea", "auto", "rerun", "keep", "discard", "quit"]
    number: int | None = None  # the suggestion picked, or the number of unattended turns
    text: str = ""


def parse_choice(answer: str, suggestions: int) -> Choice | str:
    """The researcher's answer as a Choice, or a one-line hint of what is valid."""
    words = answer.strip().split(maxsplit=1)
    if not words:
        return "type a number, e, a N, r, k, d or q"
    key, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    if key.isdigit():
        number = int(key)
        if 1 <= number <= suggestions:
            return Choice("pick", number)
        return (
            f"there are {suggestions} suggestions: pick 1 to {suggestions}"
            if suggestions
            else "no suggestions to pick from: use e"
        )
    simple = {"r": "rerun", "k": "keep", "d": "discard", "q": "quit"}
    if key in simple:
        return Choice(simple[key])  # type: ignore[arg-type]
    if key == "e":
        return Choice("idea", text=rest)
    if key == "a":
        if rest.isdigit() and int(rest) >= 1:
            return Choice("auto", int(rest))
        return "a N runs N turns unattended, for example: a 3"
    return f"unknown choice {answer.strip()!r}: type a number, e, a N, r, k, d or q"
