"""A throwaway research workspace for the sandbox and runner tests: synthetic stories tokenized
with the `bytes` tokenizer into a real token cache, a git folder, notes, and a secret-filled HOME.
"""

import hashlib
import shutil
from pathlib import Path

import pytest

from vibe_research.lm.corpus import DataSource, load_corpus
from vibe_research.lm.tokenizer import load_tokenizer
from vibe_research.lm.tokens import prepare_split
from vibe_research.runs.spec import RunSpec

ENTRIES = Path(__file__).parent / "entries"
SECRET = "s3cr3t-planted-by-the-test"


def build_cache(cache: Path) -> None:
    corpus = load_corpus(
        DataSource(source="synthetic", synthetic_train_stories=200, synthetic_valid_stories=20),
        cache,
    )
    tokenizer = load_tokenizer("bytes", cache)
    prepare_split(corpus.train, tokenizer, cache)
    prepare_split(corpus.valid, tokenizer, cache)


def make_workspace(root: Path, cache_template: Path) -> Path:
    """A workspace at `root` with every entry under tests/sandbox/entries in its experiments/."""
    (root / "experiments").mkdir(parents=True)
    for entry in ENTRIES.glob("*.py"):
        shutil.copy(entry, root / "experiments" / entry.name)
    (root / "notes").mkdir()
    (root / "notes" / "README.md").write_text("# research log\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "vibe-research.toml").write_text(
        "[train]\nbudget_s = 5\n\n[judge]\nsamples_per_run = 1\n"
    )
    (root / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    shutil.copytree(cache_template, root / ".vibe" / "cache")
    return root


def plant_home(home: Path) -> Path:
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(SECRET)
    (home / ".netrc").write_text(f"machine example.com password {SECRET}\n")
    return home


# What runs may change: their own folders, and the compile cache they share.
WRITABLE = (Path(".vibe/runs"), Path(".vibe/cache/compile"))


def tree_digest(root: Path) -> str:
    """sha256 over every path, mode and content under `root` (token caches included), except WRITABLE."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(relative == folder or relative.is_relative_to(folder) for folder in WRITABLE):
            continue
        digest.update(str(relative).encode() + oct(path.lstat().st_mode).encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def spec_for(
    workspace: Path, entry: str, run_id: str, budget_s: float = 20, **overrides: str
) -> RunSpec:
    return RunSpec(
        run_id=run_id,
        workspace=workspace,
        entry=f"experiments/{entry}",
        seed=0,
        budget_s=budget_s,
        overrides=overrides,
        run_dir=workspace / ".vibe" / "runs" / run_id,
        cache_dir=workspace / ".vibe" / "cache",
        samples=2,
    )


@pytest.fixture(scope="session")
def cache_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The token cache, built once per session and copied into each workspace."""
    cache = tmp_path_factory.mktemp("cache")
    build_cache(cache)
    return cache


@pytest.fixture
def workspace(tmp_path: Path, cache_template: Path) -> Path:
    return make_workspace(tmp_path / "ws", cache_template)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME holding planted secrets; the runner's own environment points at it."""
    planted = plant_home(tmp_path / "home")
    monkeypatch.setenv("HOME", str(planted))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return planted
