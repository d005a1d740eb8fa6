"""Real git repositories for tests: a folder made into a workspace repository, committed."""

from pathlib import Path

import git

IDENTITY = {"user.name": "Researcher", "user.email": "researcher@example.org"}


def commit_all(root: Path, message: str = "start") -> git.Repo:
    """`git init` (if needed) with a local identity, then commit every file under `root`."""
    repo = (
        git.Repo(root) if (root / ".git").exists() else git.Repo.init(root, initial_branch="main")
    )
    with repo.config_writer() as config:
        for key, value in IDENTITY.items():
            section, option = key.split(".")
            config.set_value(section, option, value)
    repo.git.add("--all")
    repo.git.commit("--quiet", "--allow-empty", "-m", message)
    return repo
