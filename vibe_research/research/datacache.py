"""Token caches on demand: what `data prepare` builds, made for the loop when a run needs one."""

from collections.abc import Callable

from vibe_research.lm.corpus import load_corpus
from vibe_research.lm.errors import UserError
from vibe_research.lm.tokenizer import check_spec, ensure_tokenizer
from vibe_research.lm.tokens import TokenSplit, open_split, prepare_split
from vibe_research.settings import Settings
from vibe_research.workspace import Workspace

# (split name, stories in it) -> a callback advancing a progress bar by n stories
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def caches_ready(workspace: Workspace, spec: str) -> bool:
    try:
        open_split("train", spec, workspace.cache)
        open_split("valid", spec, workspace.cache)
    except UserError:
        return False
    return True


def prepare_caches(
    workspace: Workspace, settings: Settings, spec: str, progress: ProgressFactory | None = None
) -> list[tuple[TokenSplit, bool]]:
    """Train the tokenizer if needed and tokenize both splits; (split, built) for train and valid."""
    spec = check_spec(spec)
    corpus = load_corpus(settings.data, workspace.root)
    tokenizer = ensure_tokenizer(
        spec, workspace.cache, corpus.train.fingerprint, corpus.train.texts
    )
    done = []
    for stories in (corpus.train, corpus.valid):
        advance = progress(f"{stories.split} stories ({spec})", stories.count) if progress else None
        done.append(prepare_split(stories, tokenizer, workspace.cache, advance))
    return done
