"""Shared fixtures. Tests that need ../shared/data skip with a reason where it is absent."""

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VIBE_SHARED_DATA", REPO.parent / "shared" / "data"))
TINYSTORIES = SHARED_DATA / "tinystories"
GPT2_RANKS = SHARED_DATA / "tokenizer" / "r50k_base.tiktoken"

# Four workers on two cores, each starting torch processes: OpenMP threads that spin while they
# wait for work (libgomp's default) burn the cores the other processes need. Three loop tests side
# by side took 200 s of CPU each with spinning and 110 s without (wall 334 s against 176 s).
# Set before torch is imported here; every process a test starts inherits it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background of a non-interactive shell (`pytest &`, nohup) inherits
    SIGINT ignored, and so would every process it starts: the Ctrl-C tests would send a signal
    nobody hears. Take Python's own handler back, so children start with SIGINT as a terminal
    gives it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests (marked slow, minutes each) first, the rest in file order: started
    last, one of them would run on alone at the end while the other workers have nothing left.
    pyproject's `--dist loadscope --no-loadscope-reorder` hands out whole modules in this order
    (a module's fixtures, a Ray cluster say, are built once)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def tinystories() -> Path:
    """Folder with the real TinyStories train-*.txt and valid.txt (read-only)."""
    if not (TINYSTORIES / "valid.txt").is_file():
        pytest.skip(f"needs the shared TinyStories data at {TINYSTORIES} (set VIBE_SHARED_DATA)")
    return TINYSTORIES


@pytest.fixture(scope="session")
def gpt2_ranks() -> Path:
    """The GPT-2 r50k_base.tiktoken ranks file (read-only)."""
    if not GPT2_RANKS.is_file():
        pytest.skip(f"needs the GPT-2 tokenizer file at {GPT2_RANKS} (set VIBE_SHARED_DATA)")
    return GPT2_RANKS


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory, tinystories: Path) -> Path:
    """A cache with bpe:4096 trained on the real TinyStories train files, both splits tokenized."""
    from vibe_research.lm.corpus import DataSource, load_corpus
    from vibe_research.lm.tokenizer import ensure_tokenizer
    from vibe_research.lm.tokens import prepare_split

    cache = tmp_path_factory.mktemp("cache")
    source = DataSource(
        source="files",
        train=[str(tinystories / "train*.txt")],
        valid=str(tinystories / "valid.txt"),
    )
    corpus = load_corpus(source, tinystories)
    tokenizer = ensure_tokenizer("bpe:4096", cache, corpus.train.fingerprint, corpus.train.texts)
    for stories in (corpus.train, corpus.valid):
        prepare_split(stories, tokenizer, cache)
    return cache
