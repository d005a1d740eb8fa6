"""Token caches on demand: what `data prepare` builds, made for the loop when a run needs one."""

from collections.abc import Callable
from pathlib import Path

from vibe_research.lm.corpus import DataSource, load_corpus
from vibe_research.lm.errors import UserError
from vibe_research.lm.tokenizer import check_spec, ensure_tokenizer
from vibe_research.lm.tokens import TokenSplit, open_split, prepare_split

# (split name, stories in it) -> a callback advancing a progress bar by n stories
ProgressFactory = Callable[[str, int], Callable[[int], None]]


# the largest BPE a proposal may ask for: the loop trains it outside the sandbox, and past this
# size training takes minutes on the shared data and the embedding dwarfs a five-minute model
MAX_PROPOSED_BPE = 32_768


def tokenizer_problem(spec: str) -> str | None:
    """Why a tokenizer a proposal or an entry asks for is not built for it, or None if it may be."""
    try:
        spec = check_spec(spec)
    except UserError as exc:
        return str(exc)
    if spec.startswith("bpe:") and int(spec.removeprefix("bpe:")) > MAX_PROPOSED_BPE:
        return (
            f"tokenizer {spec}: larger than bpe:{MAX_PROPOSED_BPE}, the most a proposal may ask for"
        )
    return None


def caches_ready(cache_dir: Path, spec: str) -> bool:
    """Whether both splits are tokenized for the tokenizer `spec` under `cache_dir`."""
    try:
        open_split("train", spec, cache_dir)
        open_split("valid", spec, cache_dir)
    except UserError:
        return False
    return True


def sealed_ready(cache_dir: Path, spec: str) -> bool:
    """Whether the sealed test split is tokenized for `spec`."""
    try:
        open_split("test", spec, cache_dir)
    except UserError:
        return False
    return True


def prepare_caches(
    data: DataSource,
    root: Path,
    cache_dir: Path,
    spec: str,
    progress: ProgressFactory | None = None,
) -> list[tuple[TokenSplit, bool]]:
    """Train the tokenizer if needed (on train only) and tokenize every split of `data` (paths
    relative to `root`): train, valid and the sealed test split where there is one; (split,
    built) for each."""
    spec = check_spec(spec)
    corpus = load_corpus(data, root)
    tokenizer = ensure_tokenizer(spec, cache_dir, corpus.train.fingerprint, corpus.train.texts)
    done = []
    for stories in (corpus.train, corpus.valid, *([corpus.test] if corpus.test else [])):
        advance = progress(f"{stories.split} stories ({spec})", stories.count) if progress else None
        done.append(prepare_split(stories, tokenizer, cache_dir, advance))
    return done
