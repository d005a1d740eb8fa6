"""Marked blocks in markdown.

A page mixes machine text and the researcher's words. The machine owns only what lies between
`<!-- vibe:begin NAME -->` and `<!-- vibe:end NAME -->`; every byte outside is kept as it is.
"""

import re

from vibe_research.lm.errors import UserError

_MARKER = re.compile(r"<!-- vibe:(begin|end) ([A-Za-z0-9_-]+) -->")


def begin(name: str) -> str:
    return f"<!-- vibe:begin {name} -->"


def end(name: str) -> str:
    return f"<!-- vibe:end {name} -->"


def _defused(body: str) -> str:
    """Body text that cannot close or open a block: a marker quoted in a diff or story is escaped."""
    return _MARKER.sub(lambda match: match.group(0).replace("<!--", "&lt;!--"), body).rstrip()


def block(name: str, body: str) -> str:
    """A whole block, markers included, as a new page lays it out."""
    return f"{begin(name)}\n{_defused(body)}\n{end(name)}"


def _spans(text: str, source: str) -> dict[str, tuple[int, int]]:
    """NAME -> (start, stop) of the text between its markers; unbalanced markers are an error."""
    spans: dict[str, tuple[int, int]] = {}
    open_name: str | None = None
    open_at = 0
    for match in _MARKER.finditer(text):
        verb, name = match.groups()
        if verb == "begin":
            if open_name is not None:
                raise UserError(
                    f"{source}: block '{open_name}' is not closed before '{name}' begins; "
                    f"restore the line `{end(open_name)}`"
                )
            if name in spans:
                raise UserError(
                    f"{source}: block '{name}' appears twice; delete one copy, markers included"
                )
            open_name, open_at = name, match.end()
        else:
            if name != open_name:
                raise UserError(
                    f"{source}: `{match.group(0)}` has no matching begin; restore `{begin(name)}` or delete the line"
                )
            spans[name] = (open_at, match.start())
            open_name = None
    if open_name is not None:
        raise UserError(
            f"{source}: block '{open_name}' is never closed; restore the line `{end(open_name)}`"
        )
    return spans


def check_blocks(text: str, source: str) -> None:
    """Raise the one-line UserError replace_blocks would, without changing anything."""
    _spans(text, source)


def replace_blocks(text: str, bodies: dict[str, str], source: str = "page") -> str:
    """Fill each named block with its body; blocks the page lacks are appended at its end.

    Only the text between markers changes, so the researcher's text survives byte for byte.
    """
    spans = _spans(text, source)
    pieces: list[str] = []
    cursor = 0
    for name, (start, stop) in sorted(spans.items(), key=lambda item: item[1][0]):
        pieces.append(text[cursor:start])
        pieces.append(f"\n{_defused(bodies[name])}\n" if name in bodies else text[start:stop])
        cursor = stop
    pieces.append(text[cursor:])
    missing = [name for name in bodies if name not in spans]
    appended = "".join(f"\n{block(name, bodies[name])}\n" for name in missing)
    if appended and not text.endswith("\n"):
        appended = "\n" + appended
    return "".join(pieces) + appended


def strip_markers(text: str) -> str:
    """The page as a reader sees it: marker comments removed (for `report --export`)."""
    return _MARKER.sub("", text).replace("\n\n\n", "\n\n")
