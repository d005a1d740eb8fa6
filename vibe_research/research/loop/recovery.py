"""Putting things right after a turn was killed, and one `continue` per workspace at a time.

Before a proposal's smoke run the loop writes `.vibe/pending-proposal.json`: HEAD, and for each
file the edits wrote, what was there before and what the edits put there. A crash (or Ctrl-C)
before the proposal is recorded is undone from it: files that still hold what the edits wrote
get their old text back (a file the edits created is removed), files someone changed since are
left alone and named, and a commit the loop made but never recorded is reverted.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ValidationError

from vibe_research.lm.atomic import write_text
from vibe_research.lm.errors import UserError
from vibe_research.research import gitops
from vibe_research.research.loop.env import Env
from vibe_research.research.propose.edits import AppliedEdits
from vibe_research.research.workspace import Workspace

log = logging.getLogger(__name__)

PENDING = "pending-proposal.json"
LOCK_FILE = "continue.lock"  # in .vibe/: the pid of the `continue` working in the workspace
PENDING_FORMAT = 1


class PendingFile(BaseModel):
    before: str | None  # None: the edits created the file
    after: str


class Pending(BaseModel):
    v: int = PENDING_FORMAT
    head: str
    files: dict[str, PendingFile]  # workspace-relative path -> texts


def _path(env: Env) -> Path:
    return env.workspace.state / PENDING


def save_pending(env: Env, applied: AppliedEdits) -> None:
    """Write what `applied` changed, before anything runs it."""
    root = env.root.resolve()
    files = {
        path.relative_to(root).as_posix(): PendingFile(
            before=applied.originals[path], after=applied.written[path]
        )
        for path in applied.written
    }
    pending = Pending(head=gitops.head(env.root), files=files)
    write_text(_path(env), pending.model_dump_json(indent=1))


def clear_pending(env: Env) -> None:
    _path(env).unlink(missing_ok=True)


def recover(env: Env) -> None:
    """Undo a proposal a crash left half done: edits never committed, or committed and never
    recorded. Touches only the files its edits wrote, and only while they hold what was written."""
    path = _path(env)
    if not path.exists():
        return
    try:
        pending = Pending.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise UserError(
            f"{path}: unreadable ({exc.errors()[0]['msg']}); check experiments/ with `git status`, "
            "then delete the file"
        ) from exc
    unrecorded = [
        sha
        for sha in gitops.proposal_commits_since(env.root, pending.head)
        if sha not in recorded_commits(env)
    ]
    for sha in unrecorded:
        env.ui.say(f"an interrupted turn committed {sha[:8]} without recording it: reverting it")
        gitops.revert(
            env.root,
            sha,
            "interrupted",
            "failed",
            "the turn that made it was killed before recording it",
        )
    if not unrecorded:
        for name in _restore(env.root, pending):
            env.ui.say(f"{name} changed after the interrupted proposal wrote it: left as it is")
        env.ui.say("undid the edits of an interrupted proposal")
    clear_pending(env)


def _restore(root: Path, pending: Pending) -> list[str]:
    left_alone = []
    for name, texts in pending.files.items():
        target = root / name
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != texts.after:
            left_alone.append(name)
        elif texts.before is None:
            target.unlink()
        else:
            write_text(target, texts.before)
    return left_alone


def recorded_commits(env: Env) -> set[str]:
    """Every commit the ledger names: proposals, restores for reruns, keeps and reverts."""
    commits = set()
    for experiment in env.state().experiments.values():
        if experiment.proposal and experiment.proposal.commit:
            commits.add(experiment.proposal.commit)
        commits.update(sha for _, sha in experiment.code_commits)
    return commits


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def exclusive(workspace: Workspace) -> Iterator[None]:
    """One `continue` per workspace at a time; a lock left by a killed process is taken over."""
    lock = workspace.state / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    if lock.exists():
        text = lock.read_text(encoding="utf-8").strip()
        if text.isdigit() and int(text) != os.getpid() and _alive(int(text)):
            raise UserError(
                f"another `vibe-research continue` (pid {text}) is working in {workspace.root}: "
                "wait for it or stop it"
            )
    write_text(lock, str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
