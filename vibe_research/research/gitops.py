"""Git history of the research: one commit per proposal, a revert commit for every loss.

History is only ever added to: no amend, no reset, no force. Every commit the loop makes carries
trailers (`Vibe-Experiment`, `Vibe-Verdict`) so `git log` tells the research story on its own
and a restarted loop can find what it already committed.
"""

import logging
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from vibe_research.lm.errors import UserError

if TYPE_CHECKING:
    import git

log = logging.getLogger(__name__)

EXPERIMENT_TRAILER = "Vibe-Experiment"
VERDICT_TRAILER = "Vibe-Verdict"
# used only when neither the repository nor the user configures an identity
FALLBACK_IDENTITY = {"name": "vibe-research", "email": "vibe-research@localhost"}
_IN_PROGRESS = {
    "MERGE_HEAD": "in the middle of a merge: finish it (`git commit`) or abort it (`git merge --abort`)",
    "CHERRY_PICK_HEAD": "in the middle of a cherry-pick: finish it or run `git cherry-pick --abort`",
    "REVERT_HEAD": "in the middle of a revert: finish it or run `git revert --abort`",
    "rebase-merge": "in the middle of a rebase: finish it or run `git rebase --abort`",
    "rebase-apply": "in the middle of a rebase: finish it or run `git rebase --abort`",
}


class DirtyExperiments(UserError):
    """experiments/ has changes no commit holds; the loop can offer to record them as a manual experiment."""

    def __init__(self, paths: list[str]) -> None:
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        super().__init__(
            f"uncommitted changes in experiments/ ({shown}): record them as a manual experiment "
            '(`vibe-research continue --manual "what you changed"`), commit them yourself, or discard them with '
            "`git checkout -- experiments/`"
        )
        self.paths = paths


def open_repo(root: Path) -> "git.Repo":
    import git

    try:
        return git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise UserError(
            f"{root} is not a git repository: run `vibe-research init` there, or `git init`"
        ) from exc


def _identity_env(repo: "git.Repo") -> dict[str, str]:
    """Author and committer for our commits when git has none configured (fresh CI machines)."""
    reader = repo.config_reader()
    if reader.has_option("user", "email") and reader.has_option("user", "name"):
        return {}
    name, email = FALLBACK_IDENTITY["name"], FALLBACK_IDENTITY["email"]
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def message(subject: str, body: str, experiment: str, verdict: str) -> str:
    """A commit message with the loop's trailers in git's trailer format (a final key: value block)."""
    parts = [subject.strip().splitlines()[0][:72] if subject.strip() else experiment]
    if body.strip():
        parts.append(body.strip())
    parts.append(f"{EXPERIMENT_TRAILER}: {experiment}\n{VERDICT_TRAILER}: {verdict}")
    return "\n\n".join(parts) + "\n"


def check_ready(root: Path, experiments: str = "experiments") -> list[str]:
    """Refuse, with one line saying what to do, a detached HEAD, an unfinished merge or rebase,
    or changes to committed files under experiments/ (raised as DirtyExperiments): the runs would
    measure code no commit holds. New files the researcher has not committed yet are theirs and
    are left alone; they are returned so the caller can name them."""
    repo = open_repo(root)
    git_dir = Path(repo.git_dir)
    for marker, problem in _IN_PROGRESS.items():
        if (git_dir / marker).exists():
            raise UserError(f"{root}: {problem}; then run vibe-research again")
    if repo.head.is_detached:
        raise UserError(
            f"{root}: HEAD is detached: check out a branch (`git switch main`) so experiments are committed on it"
        )
    modified, untracked = researcher_changes(repo, experiments)
    if modified:
        raise DirtyExperiments(modified)
    return untracked


def researcher_changes(repo: "git.Repo", folder: str) -> tuple[list[str], list[str]]:
    """(committed files changed or deleted, new files) under `folder` that no commit holds;
    ignored files are neither."""
    modified, untracked = [], []
    lines = repo.git.status("--porcelain", "--untracked-files=all", "-z", "--", folder)
    entries = iter(lines.split("\0"))
    for entry in entries:
        if not entry:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":
            next(entries, None)  # a rename's second field is its source
        (untracked if code == "??" else modified).append(path)
    return sorted(modified), sorted(untracked)


def changed_paths(repo: "git.Repo", folder: str) -> list[str]:
    """Paths under `folder` that differ from HEAD, untracked ones included (ignored ones not)."""
    modified, untracked = researcher_changes(repo, folder)
    return sorted(modified + untracked)


def dirty(root: Path, paths: list[str]) -> list[str]:
    """Those of `paths` whose file differs from HEAD (edited, created or deleted since)."""
    if not paths:
        return []
    repo = open_repo(root)
    lines = repo.git.status("--porcelain", "--untracked-files=all", "-z", "--", *paths)
    return sorted(entry[3:] for entry in lines.split("\0") if entry[:2].strip() and len(entry) > 3)


def ignored(root: Path, paths: list[str]) -> list[str]:
    """Those of `paths` that git ignores (a .gitignore rule, info/exclude, core.excludesFile)."""
    if not paths:
        return []
    done = subprocess.run(
        ["git", "check-ignore", "-z", "--stdin"],
        cwd=root,
        input="\0".join(paths).encode(),
        capture_output=True,
    )
    if done.returncode not in (0, 1):  # 1: none ignored
        raise UserError(f"git check-ignore failed in {root}: {done.stderr.decode().strip()}")
    return sorted(path for path in done.stdout.decode().split("\0") if path)


def _commit_paths(repo: "git.Repo", paths: list[str], text: str) -> str:
    """Commit exactly `paths` (edits, new files and deletions), whatever else is staged or
    changed; hooks are skipped because a formatter or linter rewriting files mid-loop would
    commit something other than what was measured."""
    root = Path(repo.working_tree_dir or ".")
    present = [path for path in paths if (root / path).exists()]
    if present:
        repo.git.add("--all", "--", *present)
    if gone := [path for path in paths if path not in present]:
        repo.git.rm("--cached", "--quiet", "--ignore-unmatch", "--", *gone)
    repo.git.commit(
        "--quiet",
        "--no-verify",
        "-m",
        text,
        "--only",
        "--",
        *paths,
        env={**os.environ, **_identity_env(repo)},
    )
    return repo.head.commit.hexsha


def commit_proposal(root: Path, experiment: str, title: str, body: str, paths: list[str]) -> str:
    """Commit the files a proposal's edits wrote, and only those, as one commit (verdict pending)."""
    repo = open_repo(root)
    if not dirty(root, paths):
        raise UserError(
            f"proposal {experiment} changed nothing: there is nothing to commit or measure"
        )
    sha = _commit_paths(repo, paths, message(title, body, experiment, "pending"))
    log.info("committed %s as %s", experiment, sha[:8])
    return sha


def commit_manual(root: Path, experiment: str, title: str, folder: str = "experiments") -> str:
    """Commit the researcher's own uncommitted changes under experiments/ as a manual experiment."""
    repo = open_repo(root)
    paths = changed_paths(repo, folder)
    if not paths:
        raise UserError(f"no uncommitted changes under {folder}/ to record as a manual experiment")
    return _commit_paths(
        repo,
        paths,
        message(
            title, "Changes made by hand, recorded as a manual experiment.", experiment, "pending"
        ),
    )


class ResearcherWorkInTheWay(UserError):
    """A file the loop must change back holds the researcher's uncommitted edits."""

    def __init__(self, experiment: str, paths: list[str]) -> None:
        super().__init__(
            f"{', '.join(paths)}: uncommitted changes of yours are in the way of undoing {experiment}; "
            "commit or stash them, then run `vibe-research continue` to finish the decision"
        )
        self.paths = paths


def touched(root: Path, sha: str) -> list[str]:
    """The paths commit `sha` changed."""
    out = open_repo(root).git.diff_tree("--no-commit-id", "--name-only", "-r", "-z", sha)
    return sorted(path for path in out.split("\0") if path)


def revert(root: Path, sha: str, experiment: str, verdict: str, reason: str) -> str:
    """Undo commit `sha` with a new commit of the same paths (history keeps the attempt); its sha.

    Only the files `sha` changed are touched; if any of them holds uncommitted edits (the
    researcher's), nothing is changed and ResearcherWorkInTheWay says which.
    """
    repo = open_repo(root)
    paths = touched(root, sha)
    if in_the_way := dirty(root, paths):
        raise ResearcherWorkInTheWay(experiment, in_the_way)
    patch = repo.git.diff("--binary", f"{sha}^", sha, "--", *paths, strip_newline_in_stdout=False)
    # `git apply` changes all the files or none, and the index of these paths only
    applied = subprocess.run(
        ["git", "apply", "-R", "--index", "-"], cwd=root, input=patch.encode(), capture_output=True
    )
    if applied.returncode != 0:
        raise UserError(
            f"cannot revert {sha[:8]} ({experiment}) cleanly: later commits changed the same lines; "
            "revert it by hand and commit, then run vibe-research again"
        )
    reverted = _commit_paths(
        repo, paths, message(f"Revert {experiment}: {verdict}", reason, experiment, verdict)
    )
    log.info("reverted %s (%s) as %s", experiment, sha[:8], reverted[:8])
    return reverted


def commit_notes(
    root: Path, experiment: str, verdict: str, summary: str, paths: list[Path]
) -> str | None:
    """Commit the notes files the loop wrote (ledger, pages, figures) after an experiment, and only
    those; None when none of them changed."""
    repo = open_repo(root)
    relative = [path.resolve().relative_to(root.resolve()).as_posix() for path in paths]
    changed = dirty(root, relative)
    if not changed:
        return None
    return _commit_paths(
        repo, changed, message(f"Notes: {experiment} ({verdict})", summary, experiment, verdict)
    )


def commit_session_stop(root: Path, ledger: Path, reason: str) -> str | None:
    """Commit the ledger after a session's stop record; None when nothing changed."""
    relative = ledger.resolve().relative_to(root.resolve()).as_posix()
    if not dirty(root, [relative]):
        return None
    first = reason.splitlines()[0] if reason.strip() else "stopped"
    return _commit_paths(
        open_repo(root), [relative], f"Notes: session stopped: {first}"[:72] + "\n"
    )


def tag_best(root: Path, experiment: str, sha: str, summary: str) -> str:
    """Tag a new best `best/<experiment>` (annotated) at `sha`. Tags are never moved: an existing
    tag of the experiment (it was the best before) is kept as it is."""
    repo = open_repo(root)
    name = f"best/{experiment}"
    if name not in repo.tags:
        repo.git.tag(
            "--annotate", "-m", summary, name, sha, env={**os.environ, **_identity_env(repo)}
        )
    return name


def diff_of(root: Path, sha: str, folder: str = "experiments") -> str:
    """The change a commit made under `folder`, as a unified diff."""
    return open_repo(root).git.show("--format=", "--no-color", sha, "--", folder)


def head(root: Path) -> str:
    return open_repo(root).head.commit.hexsha


def proposal_commits_since(root: Path, base: str) -> list[str]:
    """Proposal commits of the loop (trailer verdict `pending`) after `base` on HEAD, newest
    first; the researcher's own commits are never among them."""
    out = open_repo(root).git.log(
        "--format=%H%x1f%(trailers:key=Vibe-Verdict,valueonly)%x1e", f"{base}..HEAD"
    )
    found = []
    for entry in out.split("\x1e"):
        fields = entry.strip().split("\x1f")
        if len(fields) == 2 and fields[1].strip() == "pending":
            found.append(fields[0])
    return found
