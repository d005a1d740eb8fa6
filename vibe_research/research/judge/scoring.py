"""Judging a run's samples and comparing them with the best's, through the cache, for any judge."""

from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from vibe_research.lm.errors import UserError
from vibe_research.research.judge.cache import JudgeCache, cache_key
from vibe_research.research.judge.heuristic import HeuristicJudge
from vibe_research.research.state.ledger import PairwiseRecord, Sample, SampleScore
from vibe_research.research.stats import wilson

if TYPE_CHECKING:
    from vibe_research.llm.client import LLMClient
    from vibe_research.research.settings import Settings
    from vibe_research.research.workspace import Workspace


class Judge(Protocol):
    name: str

    @property
    def rubric_version(self) -> str: ...

    def score(self, sample: Sample) -> SampleScore: ...

    def compare(self, candidate: Sample, best: Sample) -> float: ...


class _Points(BaseModel):
    points: float


def _sample_hash(sample: Sample) -> str:
    return cache_key(sample.prompt, str(sample.seed), sample.text)


def score_samples(
    judge: Judge, samples: list[Sample], cache: JudgeCache | None = None
) -> list[SampleScore]:
    """Rubric scores for each sample, answered from the cache where the same judge saw it before."""
    scores = []
    for sample in samples:
        key = cache_key("score", _sample_hash(sample), judge.name, judge.rubric_version)
        score = cache.get(key, SampleScore) if cache else None
        if score is None:
            score = judge.score(sample)
            if cache:
                cache.put(key, score)
        scores.append(score)
    return scores


def _pairs(candidate: list[Sample], best: list[Sample]) -> list[tuple[Sample, Sample]]:
    """Samples of the same beginning (and seed, where both have it) side by side."""
    by_key = {(s.prompt, s.seed): s for s in best}
    by_prompt = {s.prompt: s for s in best}
    pairs = []
    for sample in candidate:
        other = by_key.get((sample.prompt, sample.seed)) or by_prompt.get(sample.prompt)
        if other is not None:
            pairs.append((sample, other))
    return pairs


def pairwise(
    judge: Judge,
    candidate: list[Sample],
    best: list[Sample],
    against: str,
    cache: JudgeCache | None = None,
    confidence: float = 0.95,
) -> PairwiseRecord | None:
    """Win rate of `candidate` over `best` on shared beginnings; None when they share none.

    Each beginning is judged in both orders and scores 1, 0.5 or 0; the Wilson interval counts
    beginnings, not orders, since the two orders of one beginning are not independent.
    """
    pairs = _pairs(candidate, best)
    if not pairs:
        return None
    points = 0.0
    for mine, theirs in pairs:
        key = cache_key(
            "pair", _sample_hash(mine), _sample_hash(theirs), judge.name, judge.rubric_version
        )
        cached = cache.get(key, _Points) if cache else None
        if cached is None:
            cached = _Points(points=judge.compare(mine, theirs))
            if cache:
                cache.put(key, cached)
        points += cached.points
    low, high = wilson(points, len(pairs), confidence)
    return PairwiseRecord(
        against=against,
        comparisons=len(pairs),
        wins=points,
        win_rate=points / len(pairs),
        low=low,
        high=high,
    )


def make_judge(settings: "Settings", workspace: "Workspace", client: "LLMClient | None") -> Judge:
    """The judge [judge] backend names: `llm` needs a client, `auto` uses one when given."""
    from vibe_research.research.judge.llm import LLMJudge
    from vibe_research.research.judge.reference import reference_from_cache

    backend = settings.judge.backend
    if backend == "llm" and client is None:
        raise UserError(
            'judge.backend = "llm" needs an LLM endpoint: set [llm] base_url and the API key, '
            'or set judge.backend = "heuristic" in vibe-research.toml'
        )
    if backend in ("llm", "auto") and client is not None:
        return LLMJudge(client, settings.llm.judge_model)
    return HeuristicJudge(reference_from_cache(settings.data.tokenizer, workspace.cache))
