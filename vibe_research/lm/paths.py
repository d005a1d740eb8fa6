"""Where the measurement core keeps its caches (CONTRACTS.md, "Token caches").

lm/ imports nothing else of ours, so the workspace lookup is repeated here in its smallest form.
"""

import os
from pathlib import Path

from vibe_research.lm.errors import UserError

SETTINGS_FILE = "vibe-research.toml"


def cache_root(cache_dir: Path | None = None) -> Path:
    """`cache_dir` if given, else VIBE_CACHE_DIR, else `<workspace>/.vibe/cache`."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("VIBE_CACHE_DIR"):
        return workspace_cache(Path.cwd())
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / SETTINGS_FILE).is_file():
            return workspace_cache(folder)
    raise UserError(
        f"no cache folder: no {SETTINGS_FILE} in {here} or above and VIBE_CACHE_DIR is unset; "
        "cd into a workspace or set VIBE_CACHE_DIR"
    )


def workspace_cache(root: Path) -> Path:
    """The cache of the workspace at `root`: VIBE_CACHE_DIR when set (shared by workspaces), else .vibe/cache."""
    shared = os.environ.get("VIBE_CACHE_DIR")
    return Path(shared).expanduser() if shared else root / ".vibe" / "cache"


def spec_slug(spec: str) -> str:
    """A tokenizer spec made path-safe: `bpe:4096` -> `bpe-4096`."""
    return spec.replace(":", "-").replace("/", "-")
