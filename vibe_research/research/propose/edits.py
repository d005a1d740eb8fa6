"""Search/replace edits on experiments/, all or nothing.

Every edit is checked before anything is written: the path stays under experiments/ (no `..`,
no absolute path, no symlink out, no dot-file or dot-folder, nothing git ignores), the file is
either committed and unchanged or new (a file with the researcher's uncommitted edits is
theirs), the search block matches exactly once (a whitespace-tolerant match is the fallback, and
is recorded as such), no edit is a no-op, and every changed Python file compiles. Only then are
the files replaced, each by an atomic rename. The result knows exactly which files it wrote and
what it wrote, so undoing it touches those files only, and only while they still hold its text.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from vibe_research.llm.schemas import Edit
from vibe_research.lm.atomic import write_text
from vibe_research.lm.errors import UserError
from vibe_research.research import gitops

Match = Literal["exact", "whitespace", "new file"]


class EditRejected(UserError):
    """An edit that cannot be applied; nothing on disk was changed."""


@dataclass(frozen=True)
class EditMatch:
    path: str
    match: Match


@dataclass
class AppliedEdits:
    """Edits now on disk: what was there before each file, and what the edits wrote into it."""

    originals: dict[Path, str | None]  # None: the file was created by the edits
    written: dict[Path, str]
    matches: list[EditMatch] = field(default_factory=list)

    def paths(self, root: Path) -> list[str]:
        """The written files, relative to the workspace `root`."""
        return sorted(path.relative_to(root.resolve()).as_posix() for path in self.written)

    def revert(self) -> list[Path]:
        """Put back what was there before, in each file that still holds what the edits wrote;
        the files someone changed since are left alone and returned."""
        changed_since = []
        for path, text in self.originals.items():
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current != self.written[path]:
                changed_since.append(path)
            elif text is None:
                path.unlink()
            else:
                write_text(path, text)
        return changed_since


def apply_edits(root: Path, edits: Sequence[Edit]) -> AppliedEdits:
    """Apply `edits` (paths relative to the workspace `root`) or raise EditRejected changing nothing."""
    experiments = (root / "experiments").resolve()
    originals: dict[Path, str | None] = {}
    texts: dict[Path, str] = {}
    matches: list[EditMatch] = []
    for edit in edits:
        target = resolve_target(root, experiments, edit.path)
        if target not in originals:
            originals[target] = _read(target, edit.path)
        current = texts.get(target, originals[target])
        texts[target], how = _apply_one(current, edit)
        matches.append(EditMatch(edit.path, how))
    _check_owned(root, texts)
    for target, text in texts.items():
        _check_compiles(target, text, root)
    _write_all(texts, originals)
    return AppliedEdits(originals, texts, matches)


def _check_owned(root: Path, texts: dict[Path, str]) -> None:
    """Refuse files git ignores (a proposal could hide what it writes from every commit) and files
    that hold the researcher's uncommitted work (new files of theirs included)."""
    paths = [target.relative_to(root.resolve()).as_posix() for target in texts]
    if ignored := gitops.ignored(root, paths):
        raise EditRejected(
            f"{', '.join(ignored)}: git ignores it, so no commit would hold the change; "
            "edit files that git tracks"
        )
    existing = [path for path, target in zip(paths, texts, strict=True) if target.exists()]
    if theirs := gitops.dirty(root, existing):
        raise EditRejected(
            f"{', '.join(theirs)}: holds the researcher's uncommitted work, which is theirs; "
            "edit another file or create a new one"
        )


def resolve_target(root: Path, experiments: Path, path: str) -> Path:
    """The real file an edit path names, which must lie under experiments/."""
    if "\0" in path:
        raise EditRejected(
            f"edit path {path!r} holds a NUL byte; name a file like experiments/train.py"
        )
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or Path(path).is_absolute():
        raise EditRejected(
            f"edit path {path!r} must be relative to the workspace, like experiments/train.py"
        )
    if ".." in pure.parts:
        raise EditRejected(
            f"edit path {path!r} uses '..'; edits may only change files under experiments/"
        )
    if pure.parts[0] != "experiments":
        raise EditRejected(
            f"edit path {path!r} is outside experiments/; only files under experiments/ may change"
        )
    if any(part.startswith(".") for part in pure.parts):
        raise EditRejected(
            f"edit path {path!r} names a dot-file or dot-folder (.git, .gitignore, ...): those "
            "decide what git and tools see, not what the experiment does; edit another file"
        )
    target = (root / pure).resolve()
    if not target.is_relative_to(experiments) or target == experiments:
        raise EditRejected(
            f"edit path {path!r} leads outside experiments/ through a symlink; edit the file under experiments/ instead"
        )
    if target.is_dir():
        raise EditRejected(f"edit path {path!r} is a folder; name a file")
    return target


def _read(target: Path, path: str) -> str | None:
    if not target.exists():
        return None
    try:
        return target.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EditRejected(f"{path} is not UTF-8 text; only text files can be edited") from exc


def _apply_one(text: str | None, edit: Edit) -> tuple[str, Match]:
    if edit.search == edit.replace:
        raise EditRejected(
            f"{edit.path}: search and replace are the same; a no-op edit is not a change"
        )
    if text is None:
        if edit.search:
            raise EditRejected(
                f"{edit.path} does not exist; to create it, give an empty search block"
            )
        return edit.replace, "new file"
    if not edit.search:
        raise EditRejected(f"{edit.path} exists; an empty search block only creates new files")
    count = text.count(edit.search)
    if count == 1:
        return text.replace(edit.search, edit.replace, 1), "exact"
    if count > 1:
        raise EditRejected(
            f"{edit.path}: the search block matches {count} times; add surrounding lines so it matches once"
        )
    return _replace_loosely(text, edit), "whitespace"


def _norm(line: str) -> str:
    return " ".join(line.split())


def _replace_loosely(text: str, edit: Edit) -> str:
    """Match line by line ignoring whitespace; re-indent the replacement to the file's indentation."""
    lines = text.splitlines(keepends=True)
    wanted = edit.search.strip("\n").splitlines()
    key = [_norm(line) for line in wanted]
    starts = [
        i
        for i in range(len(lines) - len(key) + 1)
        if [_norm(line) for line in lines[i : i + len(key)]] == key
    ]
    if not starts:
        raise EditRejected(
            f"{edit.path}: the search block is not in the file, not even ignoring whitespace; copy it exactly from the current file"
        )
    if len(starts) > 1:
        raise EditRejected(
            f"{edit.path}: the search block matches {len(starts)} times (ignoring whitespace); add surrounding lines so it matches once"
        )
    start, end = starts[0], starts[0] + len(key)
    file_indent = _indent(lines[start])
    search_indent = _indent(wanted[0])
    replaced = [
        file_indent + line[len(search_indent) :] if line.startswith(search_indent) else line
        for line in edit.replace.strip("\n").splitlines()
    ]
    tail = "\n" if lines[end - 1].endswith("\n") else ""
    new_block = "\n".join(replaced) + tail if replaced else ""
    result = "".join(lines[:start]) + new_block + "".join(lines[end:])
    if result == text:
        raise EditRejected(
            f"{edit.path}: the edit leaves the file unchanged; a no-op edit is not a change"
        )
    return result


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _check_compiles(target: Path, text: str, root: Path) -> None:
    if target.suffix != ".py":
        return
    name = target.relative_to(root.resolve()).as_posix()
    try:
        # What py_compile checks, without leaving a .pyc next to the experiment.
        compile(text, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise EditRejected(
            f"{name}:{exc.lineno}: {exc.msg} after the edits; nothing was changed"
        ) from exc
    except ValueError as exc:
        raise EditRejected(f"{name}: {exc} after the edits; nothing was changed") from exc


def _write_all(texts: dict[Path, str], originals: dict[Path, str | None]) -> None:
    written: list[Path] = []
    try:
        for target, text in texts.items():
            write_text(target, text)
            written.append(target)
    except OSError:
        AppliedEdits({path: originals[path] for path in written}, texts).revert()
        raise
