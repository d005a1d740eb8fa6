"""The knobs block at the top of an experiment: `CONFIG = {`, one `"key": value,  # comment` per line, `}`.

The offline planner reads current values from it and changes them with exact search/replace
edits of single lines, so the edit path checks them like any LLM edit.
"""

import ast
import json
import re
from dataclasses import dataclass

from vibe_research.llm.schemas import Edit

_START = re.compile(r"^CONFIG\s*(?::[^=]*)?=\s*\{\s*(#.*)?$")
_ENTRY = re.compile(
    r'^\s*"(?P<key>[A-Za-z_]\w*)"\s*:\s*(?P<value>.+?)\s*,?\s*(?:#\s*(?P<comment>.*))?$'
)
_CHOICES = re.compile(r"[\w:.+-]+(?:\s*\|\s*[\w:.+-]+)+")

Value = bool | int | float | str


@dataclass(frozen=True)
class ConfigLine:
    key: str
    value: Value
    line: str  # the exact text of the line in the file, without its newline
    value_span: tuple[int, int]  # where the value's literal sits in `line`
    comment: str

    def edit(self, path: str, value: Value) -> Edit:
        """An exact one-line edit setting this key to `value`."""
        start, end = self.value_span
        return Edit(
            path=path,
            search=self.line,
            replace=self.line[:start] + literal(value) + self.line[end:],
        )

    def choices(self) -> list[Value]:
        """Alternatives the comment lists as `a | b | c`, in the type of the current value."""
        found = _CHOICES.search(self.comment)
        if not found:
            return []
        return [
            v
            for v in (_as_type(self.value, raw.strip()) for raw in found.group().split("|"))
            if v is not None
        ]


def read_config(text: str) -> dict[str, ConfigLine]:
    """The CONFIG block's literal entries by key; empty when the file has no such block."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _START.match(line)), None)
    if start is None:
        return {}
    entries: dict[str, ConfigLine] = {}
    for line in lines[start + 1 :]:
        if line.strip().startswith("}"):
            break
        match = _ENTRY.match(line)
        if match is None:
            continue
        try:
            value = ast.literal_eval(match.group("value"))
        except (ValueError, SyntaxError):
            continue  # an expression, not a literal: the planner leaves it alone
        if isinstance(value, bool | int | float | str):
            entries[match.group("key")] = ConfigLine(
                match.group("key"), value, line, match.span("value"), match.group("comment") or ""
            )
    return entries


def literal(value: Value) -> str:
    """Python source for `value` in the block's style: floats to 3 significant digits."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, float):
        return repr(float(f"{value:.3g}"))
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _as_type(current: Value, raw: str) -> Value | None:
    if isinstance(current, bool):
        return {"true": True, "false": False}.get(raw.lower())
    try:
        return type(current)(raw)
    except ValueError:
        return None
