"""Git history of the research, on real repositories in tmp_path."""

import subprocess
from pathlib import Path

import git
import pytest

from vibe_research.lm.errors import UserError
from vibe_research.research import gitops

IDENTITY = {
    "GIT_AUTHOR_NAME": "R",
    "GIT_AUTHOR_EMAIL": "r@example.org",
    "GIT_COMMITTER_NAME": "R",
    "GIT_COMMITTER_EMAIL": "r@example.org",
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with experiments/train.py and notes/, no identity configured anywhere."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    root = tmp_path / "ws"
    (root / "experiments").mkdir(parents=True)
    (root / "notes").mkdir()
    (root / "experiments" / "train.py").write_text("D_MODEL = 128  # width\nLAYERS = 2\n")
    (root / "notes" / "README.md").write_text("# notes\n")
    repo = git.Repo.init(root, initial_branch="main")
    repo.git.add("--all")
    repo.git.commit("-m", "start", env=IDENTITY)
    return root


def _log(root: Path) -> str:
    return subprocess.run(
        ["git", "log", "--format=%s%n%b---"], cwd=root, capture_output=True, text=True, check=True
    ).stdout


def test_a_lost_proposal_is_committed_then_reverted_never_rewritten(workspace: Path) -> None:
    start = gitops.head(workspace)
    train = workspace / "experiments" / "train.py"
    train.write_text("D_MODEL = 192  # width\nLAYERS = 2\n")
    (workspace / "experiments" / "helper.py").write_text("X = 1\n")
    (workspace / "experiments" / "mine.py").write_text("# the researcher's, uncommitted\n")
    proposal = gitops.commit_proposal(
        workspace,
        "0001-wider",
        "Wider model",
        "Hypothesis: wider is better.",
        ["experiments/helper.py", "experiments/train.py"],
    )
    diff = gitops.diff_of(workspace, proposal)
    assert "+D_MODEL = 192" in diff and "helper.py" in diff and "mine.py" not in diff
    (workspace / "notes" / "README.md").write_text("# notes, being rewritten\n")
    git.Repo(workspace).git.add("notes/README.md")  # staged by someone else: must not ride along
    reverted = gitops.revert(
        workspace, proposal, "0001-wider", "worse", "bpb +0.010 [0.004, 0.016]"
    )
    assert git.Repo(workspace).git.show("--name-only", "--format=", reverted).split() == [
        "experiments/helper.py",
        "experiments/train.py",
    ]
    assert (
        train.read_text() == "D_MODEL = 128  # width\nLAYERS = 2\n"
        and not (workspace / "experiments" / "helper.py").exists()
    )
    assert (
        workspace / "experiments" / "mine.py"
    ).read_text() == "# the researcher's, uncommitted\n"
    repo = git.Repo(workspace)
    assert repo.head.commit.hexsha == reverted and repo.head.commit.parents[0].hexsha == proposal
    assert gitops.changed_paths(repo, "notes") == ["notes/README.md"]
    ledger = workspace / "notes" / "ledger.jsonl"
    ledger.write_text("{}\n")
    notes = gitops.commit_notes(workspace, "0001-wider", "worse", "Notes for 0001-wider.", [ledger])
    assert notes is not None
    assert gitops.commit_notes(workspace, "0001-wider", "worse", "again", [ledger]) is None
    assert git.Repo(workspace).git.show("--name-only", "--format=", notes).split() == [
        "notes/ledger.jsonl"
    ]
    assert gitops.changed_paths(repo, "notes") == ["notes/README.md"]  # theirs, still uncommitted
    log = _log(workspace)
    assert (
        "Revert 0001-wider: worse\nbpb +0.010 [0.004, 0.016]\n\nVibe-Experiment: 0001-wider\nVibe-Verdict: worse"
        in log
    )
    assert (
        "Wider model\nHypothesis: wider is better.\n\nVibe-Experiment: 0001-wider\nVibe-Verdict: pending"
        in log
    )
    assert gitops.proposal_commits_since(workspace, start) == [proposal]
    assert repo.head.commit.author.email == gitops.FALLBACK_IDENTITY["email"]


def test_a_revert_never_overwrites_the_researchers_uncommitted_edit(workspace: Path) -> None:
    train = workspace / "experiments" / "train.py"
    train.write_text("D_MODEL = 192  # width\nLAYERS = 2\n")
    proposal = gitops.commit_proposal(
        workspace, "0001-wider", "Wider", "", ["experiments/train.py"]
    )
    train.write_text("D_MODEL = 192  # width\nLAYERS = 2\n# my note\n")
    head = gitops.head(workspace)
    with pytest.raises(gitops.ResearcherWorkInTheWay, match=r"experiments/train.py: uncommitted"):
        gitops.revert(workspace, proposal, "0001-wider", "worse", "")
    assert train.read_text().endswith("# my note\n") and gitops.head(workspace) == head


def test_a_new_best_is_tagged_once_and_tags_never_move(workspace: Path) -> None:
    (workspace / "experiments" / "train.py").write_text("D_MODEL = 256\n")
    sha = gitops.commit_proposal(workspace, "0002-x", "X", "", ["experiments/train.py"])
    assert gitops.tag_best(workspace, "0002-x", sha, "bpb 1.20") == "best/0002-x"
    parent = git.Repo(workspace).head.commit.parents[0].hexsha
    assert gitops.tag_best(workspace, "0002-x", parent, "other") == "best/0002-x"
    tag = git.Repo(workspace).tags["best/0002-x"]
    assert tag.commit.hexsha == sha and tag.tag.message == "bpb 1.20"


def test_changed_committed_experiments_are_refused_and_can_be_recorded_as_manual(
    workspace: Path,
) -> None:
    assert gitops.check_ready(workspace) == []
    (workspace / "notes" / "README.md").write_text("# my own notes edit\n")
    gitops.check_ready(workspace)  # notes are the researcher's to edit at any time
    (workspace / "experiments" / "new.py").write_text("Y = 2\n")
    assert gitops.check_ready(workspace) == ["experiments/new.py"]  # new files are theirs
    (workspace / "experiments" / "train.py").write_text("D_MODEL = 160\n")
    with pytest.raises(
        gitops.DirtyExperiments, match=r"uncommitted changes in experiments/ .*manual experiment"
    ) as caught:
        gitops.check_ready(workspace)
    assert caught.value.paths == ["experiments/train.py"]
    sha = gitops.commit_manual(workspace, "0003-by-hand", "Width 160 by hand")
    assert "+D_MODEL = 160" in gitops.diff_of(workspace, sha)
    assert "new.py" in gitops.diff_of(workspace, sha)  # --manual records all of their changes
    assert gitops.check_ready(workspace) == []
    with pytest.raises(UserError, match="nothing to commit"):
        gitops.commit_proposal(workspace, "0004-nothing", "Nothing", "", ["experiments/train.py"])


def test_detached_head_and_unfinished_merge_are_refused(workspace: Path) -> None:
    repo = git.Repo(workspace)
    first = repo.head.commit.hexsha
    repo.git.checkout(first)
    with pytest.raises(UserError, match=r"HEAD is detached.*git switch"):
        gitops.check_ready(workspace)
    repo.git.checkout("main")
    repo.git.checkout("-b", "side")
    (workspace / "experiments" / "train.py").write_text("D_MODEL = 100\n")
    repo.git.commit("-am", "side", env=IDENTITY)
    repo.git.checkout("main")
    (workspace / "experiments" / "train.py").write_text("D_MODEL = 300\n")
    repo.git.commit("-am", "main", env=IDENTITY)
    with pytest.raises(git.GitCommandError):
        repo.git.merge("side", env=IDENTITY)
    with pytest.raises(UserError, match=r"in the middle of a merge.*git merge --abort"):
        gitops.check_ready(workspace)


def test_not_a_repository_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not a git repository.*vibe-research init"):
        gitops.check_ready(tmp_path)
