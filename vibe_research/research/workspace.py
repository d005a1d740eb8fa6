"""Where things live in a research workspace (see DESIGN.md, "The workspace")."""

from dataclasses import dataclass
from pathlib import Path

from vibe_research.lm.errors import UserError
from vibe_research.lm.paths import workspace_cache

SETTINGS_FILE = "vibe-research.toml"
SANDBOX_FILE = "sandbox.toml"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def settings_file(self) -> Path:
        return self.root / SETTINGS_FILE

    @property
    def sandbox_file(self) -> Path:
        return self.root / SANDBOX_FILE

    @property
    def notes(self) -> Path:
        return self.root / "notes"

    @property
    def experiments_pages(self) -> Path:
        return self.notes / "experiments"

    @property
    def figures(self) -> Path:
        return self.notes / "figures"

    @property
    def ledger(self) -> Path:
        return self.notes / "ledger.jsonl"

    @property
    def experiments(self) -> Path:
        return self.root / "experiments"

    @property
    def state(self) -> Path:
        """Machine state, git-ignored: run folders, caches, LLM call logs."""
        return self.root / ".vibe"

    @property
    def cache(self) -> Path:
        """Token caches and tokenizers: VIBE_CACHE_DIR when set (shared between workspaces), else .vibe/cache."""
        return workspace_cache(self.root)

    @property
    def runs(self) -> Path:
        return self.state / "runs"

    @property
    def llm_log(self) -> Path:
        return self.state / "llm-calls.jsonl"


def find_workspace(start: Path | None = None) -> Workspace:
    """The nearest folder at or above `start` (default: cwd) holding vibe-research.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SETTINGS_FILE).is_file():
            return Workspace(folder)
    raise UserError(
        f"no {SETTINGS_FILE} in {here} or above: run `vibe-research init` to create a workspace, or cd into one"
    )
