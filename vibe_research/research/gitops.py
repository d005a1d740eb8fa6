"""Git history of the research: one commit per proposal, a revert commit for every loss.

History is only ever added to: no amend, no reset, no force. Every commit the loop makes carries
trailers (`Vibe-Experiment`, `Vibe-Verdict`) so `git log` tells the research story on its own
and a restarted loop can find what it already committed.
"""

import logging
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TrailerCommit:
    sha: str
    experiment: str
    verdict: str | None
    subject: str


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


def check_ready(root: Path, experiments: str = "experiments") -> None:
    """Refuse, with one line saying what to do, a detached HEAD, an unfinished merge or rebase,
    or uncommitted changes under experiments/ (raised as DirtyExperiments)."""
    repo = open_repo(root)
    git_dir = Path(repo.git_dir)
    for marker, problem in _IN_PROGRESS.items():
        if (git_dir / marker).exists():
            raise UserError(f"{root}: {problem}; then run vibe-research again")
    if repo.head.is_detached:
        raise UserError(
            f"{root}: HEAD is detached: check out a branch (`git switch main`) so experiments are committed on it"
        )
    dirty = changed_paths(repo, experiments)
    if dirty:
        raise DirtyExperiments(dirty)


def changed_paths(repo: "git.Repo", folder: str) -> list[str]:
    """Paths under `folder` that differ from HEAD, untracked ones included (ignored ones not)."""
    lines = repo.git.status("--porcelain", "--untracked-files=all", "--", folder).splitlines()
    return sorted(line[3:].strip().strip('"') for line in lines if line.strip())


def _commit(repo: "git.Repo", folder: str, text: str) -> str:
    """Commit `folder` alone, whatever else is staged; hooks are skipped because a formatter or
    linter rewriting files mid-loop would commit something other than what was measured."""
    repo.git.add("--all", "--", folder)
    repo.git.commit(
        "--quiet",
        "--no-verify",
        "-m",
        text,
        "--",
        folder,
        env={**os.environ, **_identity_env(repo)},
    )
    return repo.head.commit.hexsha


def commit_proposal(
    root: Path, experiment: str, title: str, body: str, folder: str = "experiments"
) -> str:
    """Commit the applied edits under experiments/ as one commit (verdict pending); its sha."""
    repo = open_repo(root)
    if not changed_paths(repo, folder):
        raise UserError(
            f"proposal {experiment} changed nothing under {folder}/: there is nothing to commit or measure"
        )
    sha = _commit(repo, folder, message(title, body, experiment, "pending"))
    log.info("committed %s as %s", experiment, sha[:8])
    return sha


def commit_manual(root: Path, experiment: str, title: str, folder: str = "experiments") -> str:
    """Commit the researcher's own uncommitted changes under experiments/ as a manual experiment."""
    repo = open_repo(root)
    if not changed_paths(repo, folder):
        raise UserError(f"no uncommitted changes under {folder}/ to record as a manual experiment")
    return _commit(
        repo,
        folder,
        message(
            title, "Changes made by hand, recorded as a manual experiment.", experiment, "pending"
        ),
    )


def revert(
    root: Path, sha: str, experiment: str, verdict: str, reason: str, folder: str = "experiments"
) -> str:
    """Undo a proposal's commit with a new commit (history keeps the attempt); its sha."""
    import git

    repo = open_repo(root)
    try:
        repo.git.revert("--no-commit", sha)
    except git.GitCommandError as exc:
        repo.git.revert("--abort")
        raise UserError(
            f"cannot revert {sha[:8]} ({experiment}) cleanly: later commits changed the same lines; "
            "revert it by hand and commit, then run vibe-research again"
        ) from exc
    subject = f"Revert {experiment}: {verdict}"
    try:
        reverted = _commit(repo, folder, message(subject, reason, experiment, verdict))
    except git.GitCommandError as exc:
        repo.git.revert("--abort")  # never leave a half-made revert staged in the researcher's tree
        raise UserError(
            f"cannot commit the revert of {sha[:8]} ({experiment}) under {folder}/: "
            f"{exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc}"
        ) from exc
    log.info("reverted %s (%s) as %s", experiment, sha[:8], reverted[:8])
    return reverted


def commit_notes(
    root: Path, experiment: str, verdict: str, summary: str, folder: str = "notes"
) -> str | None:
    """Commit notes/ (ledger, pages, figures) after an experiment; None when nothing changed."""
    repo = open_repo(root)
    if not changed_paths(repo, folder):
        return None
    return _commit(
        repo, folder, message(f"Notes: {experiment} ({verdict})", summary, experiment, verdict)
    )


def tag_best(root: Path, experiment: str, sha: str, summary: str) -> str:
    """Tag a new best `best/<experiment>` (annotated); an existing tag on the same commit is reused."""
    repo = open_repo(root)
    name = f"best/{experiment}"
    if name in repo.tags:
        if repo.tags[name].commit.hexsha != sha:
            raise UserError(
                f"tag {name} already points at {repo.tags[name].commit.hexsha[:8]}, not {sha[:8]}: "
                "tags are never moved; delete it by hand if it is wrong"
            )
        return name
    repo.git.tag("--annotate", "-m", summary, name, sha, env={**os.environ, **_identity_env(repo)})
    return name


def diff_of(root: Path, sha: str, folder: str = "experiments") -> str:
    """The change a commit made under `folder`, as a unified diff."""
    return open_repo(root).git.show("--format=", "--no-color", sha, "--", folder)


def head(root: Path) -> str:
    return open_repo(root).head.commit.hexsha


def commits_for(root: Path, experiment: str) -> list[TrailerCommit]:
    """The loop's commits for `experiment`, oldest first, found by trailer (to resume after a crash)."""
    repo = open_repo(root)
    out = repo.git.log(
        "--reverse",
        "--format=%H%x1f%s%x1f%(trailers:key=Vibe-Experiment,valueonly)%x1f"
        "%(trailers:key=Vibe-Verdict,valueonly)%x1e",
    )
    commits = []
    for entry in out.split("\x1e"):
        fields = entry.strip().split("\x1f")
        if len(fields) == 4 and fields[2].strip() == experiment:
            commits.append(
                TrailerCommit(
                    sha=fields[0],
                    experiment=experiment,
                    verdict=fields[3].strip() or None,
                    subject=fields[1],
                )
            )
    return commits
