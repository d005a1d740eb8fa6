"""The judges: the heuristic one on real TinyStories against corrupted copies, the LLM one over HTTP."""

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from corruptions import CORRUPTIONS, splice_from, stories
from openai_server import ScriptedOpenAIServer

from vibe_research.llm.client import LLMClient
from vibe_research.llm.settings import LLMSettings
from vibe_research.research.judge.cache import JudgeCache
from vibe_research.research.judge.features import extract
from vibe_research.research.judge.heuristic import HeuristicJudge
from vibe_research.research.judge.llm import LLMJudge, RubricReply
from vibe_research.research.judge.reference import Reference, reference_from_texts
from vibe_research.research.judge.scoring import pairwise, score_samples
from vibe_research.research.state.ledger import Sample, SampleScore


@pytest.fixture(scope="module")
def reference(tinystories: Path, gpt2_ranks: Path) -> Iterator[Reference]:
    from vibe_research.lm.tokenizer import load_tokenizer

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIBE_GPT2_RANKS", str(gpt2_ranks))
        tokenizer = load_tokenizer("gpt2")
        texts = [
            story
            for path in sorted(tinystories.glob("train*.txt"))
            for story in stories(path.read_text(encoding="utf-8"))
        ]
        yield reference_from_texts(texts, tokenizer)


def _story(text: str, prompt: str = "") -> Sample:
    return Sample(prompt=prompt, seed=0, text=text)


def test_features_see_the_seeds_artifacts() -> None:
    seed_sample = (
        "Once upon a time,, in a small house, there lived a boy named Tim. Tim loved to play outside with his "
        "ball. One One day, Tim was playing with his his ball and had a lot of fun. But the"
    )
    features = extract(seed_sample)
    assert (
        features.punctuation_artifacts == 1
        and features.doubled_words == 2
        and not features.ends_cleanly
    )
    scrambled = extract(
        "Lily was sad. She cried. Then her mom came. Once upon a time, there was a girl named Lily."
    )
    assert scrambled.names_used_before_introduced == 1 and scrambled.misplaced_formulas == 1
    # a possessive is its name, a contraction no name at all
    told = extract(
        "Lily had a ball. Lily's ball was red. Let's play, said Lily. Don't go, Tom said."
    )
    assert told.one_off_names == ("Tom",)
    assert (
        extract("She ran home.").opens_mid_story
        and not extract("She ran home.", prompt="x").opens_mid_story
    )


def test_heuristic_ranks_real_stories_above_corrupted_ones(
    tinystories: Path, reference: Reference
) -> None:
    judge = HeuristicJudge(reference)
    rng = random.Random(0)
    valid = stories((tinystories / "valid.txt").read_text(encoding="utf-8"))
    corruptions = {**CORRUPTIONS, "spliced (n-gram-like)": splice_from(valid)}
    wins: dict[str, list[bool]] = {name: [] for name in corruptions}
    for story in valid:
        real = judge.score(_story(story)).overall
        for name, corrupt in corruptions.items():
            corrupted = corrupt(story, rng)
            if corrupted is not None:
                wins[name].append(real > judge.score(_story(corrupted)).overall)
    total = sum(len(w) for w in wins.values())
    accuracy = sum(sum(w) for w in wins.values()) / total
    print(
        f"heuristic judge, real above corrupted: {accuracy:.1%} of {total} pairs; "
        + ", ".join(f"{name} {sum(w) / len(w):.1%}" for name, w in wins.items())
    )
    assert accuracy >= 0.95
    assert all(sum(w) / len(w) >= 0.9 for w in wins.values())


def test_heuristic_scores_fit_the_rubric_and_explain_themselves(reference: Reference) -> None:
    judge = HeuristicJudge(reference)
    clean = judge.score(
        _story(
            "Once upon a time, there was a little girl named Lily. She loved to play with her red "
            "ball in the park. One day, the ball rolled into a pond. Lily was sad. A kind duck "
            'pushed the ball back to her. Lily said, "Thank you, duck!" They played together '
            "all day and became best friends.",
            prompt="Once upon a time",
        )
    )
    broken = judge.score(
        _story(
            "Once upon a time,, there was a a boy. boy boy boy boy boy boy boy boy boy boy",
            prompt="Once upon a time",
        )
    )
    assert clean.overall > broken.overall + 3
    for score in (clean, broken):
        assert all(
            1 <= value <= 10
            for value in (score.grammar, score.creativity, score.consistency, score.plot)
        )
    assert "doubled" in broken.rationale and "punctuation" in broken.rationale
    assert judge.rubric_version.startswith("heuristic-4+kn3-gpt2-")


def test_gibberish_from_an_untrained_model_scores_one_everywhere(reference: Reference) -> None:
    prompt = "Tom had a red ball. One day, he kicked it very high and"
    noise = bytes(range(128, 256)).decode("latin-1") + "\ufffd" * 40
    score = HeuristicJudge(reference).score(
        Sample(prompt=prompt, seed=0, text=prompt + " " + noise, finished=False)
    )
    assert (score.grammar, score.creativity, score.consistency, score.plot) == (1.0, 1.0, 1.0, 1.0)
    assert "mostly not words" in score.rationale


def test_heuristic_without_a_reference_still_scores() -> None:
    judge = HeuristicJudge()
    assert judge.rubric_version == "heuristic-4"
    assert (
        judge.score(
            _story("Tim had a ball. He threw it high. The dog caught it. They were happy.")
        ).plot
        > 5
    )


def test_cache_answers_a_repeated_sample_without_judging_again(tmp_path: Path) -> None:
    calls: list[str] = []

    class CountingJudge(HeuristicJudge):
        def score(self, sample: Sample) -> SampleScore:
            calls.append(sample.text)
            return super().score(sample)

    cache = JudgeCache(tmp_path / "judge")
    samples = [_story("Tim had a ball. He threw it high."), _story("Sue had a cat. It was soft.")]
    first = score_samples(CountingJudge(), samples, cache)
    second = score_samples(CountingJudge(), samples, cache)
    assert first == second and len(calls) == 2
    assert len(list((tmp_path / "judge").rglob("*.json"))) == 2


def test_heuristic_pairwise_prefers_the_cleaner_stories(reference: Reference) -> None:
    clean = [
        _story(
            "Tom had a red ball. One day, he kicked it very high and it landed in a tree. His friend Sam "
            "helped him get it down. They played until dinner and went home happy.",
            "Tom had a red ball.",
        ),
        _story(
            "Mia went to the store with her mom. They bought apples and milk. Mia carried the bag home "
            "all by herself. Her mom was proud of her.",
            "Mia went to the store",
        ),
    ]
    broken = [
        _story("Tom had a red ball. ball ball ball ball,, he he kicked", "Tom had a red ball."),
        _story("Mia went to the store store store,, and and", "Mia went to the store"),
    ]
    result = pairwise(HeuristicJudge(reference), clean, broken, against="0000-baseline")
    assert (
        result is not None
        and result.win_rate == 1.0
        and result.comparisons == 2
        and 0 < result.low < 1
    )
    assert (
        pairwise(HeuristicJudge(reference), clean, [_story("x", "another beginning")], "b") is None
    )


def _llm_judge(server: ScriptedOpenAIServer, tmp_path: Path) -> LLMJudge:
    settings = LLMSettings(
        base_url=server.base_url,
        judge_model="test-judge",
        timeout_s=2.0,
        max_retries=0,
        max_usd=None,
    )
    return LLMJudge(LLMClient(settings, tmp_path / "llm-calls.jsonl"), "test-judge")


def test_llm_judge_sends_the_rubric_and_reads_the_scores(tmp_path: Path) -> None:
    with ScriptedOpenAIServer() as server:
        server.reply_json(
            {
                "grammar": 8,
                "creativity": 6,
                "consistency": 7,
                "plot": 5,
                "rationale": "Fluent but ends abruptly.",
            }
        )
        sample = Sample(
            prompt="Tom had a red ball.", seed=3, text="Tom had a red ball. He threw it to his dog."
        )
        cache = JudgeCache(tmp_path / "judge")
        [score] = score_samples(_llm_judge(server, tmp_path), [sample], cache)
        [again] = score_samples(_llm_judge(server, tmp_path), [sample], cache)
        assert len(server.requests) == 1, "the second scoring comes from the cache"
    assert (score.grammar, score.creativity, score.consistency, score.plot) == (
        8,
        6,
        7,
        5,
    ) and again == score
    assert score.seed == 3 and score.rationale == "Fluent but ends abruptly."
    prompt = server.requests[0]["messages"][1]["content"]
    assert "Tom had a red ball.*** He threw it to his dog." in prompt and "consistency" in prompt
    schema = server.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema == RubricReply.model_json_schema()


def test_llm_pairwise_asks_both_orders_to_cancel_position_bias(tmp_path: Path) -> None:
    candidate = [
        Sample(prompt=p, seed=i, text=p + " good")
        for i, p in enumerate(["A cat.", "A dog.", "A bird."])
    ]
    best = [
        Sample(prompt=p, seed=i, text=p + " bad")
        for i, p in enumerate(["A cat.", "A dog.", "A bird."])
    ]
    with ScriptedOpenAIServer() as server:
        # beginning 1: candidate wins in both orders; 2: the judge always says A (pure position bias); 3: loses both
        for winner in ("A", "B", "A", "A", "B", "A"):
            server.reply_json({"winner": winner, "rationale": "because"})
        result = pairwise(_llm_judge(server, tmp_path), candidate, best, against="0001-x")
        shown_first = [
            request["messages"][1]["content"].split("Student B:")[0] for request in server.requests
        ]
    assert result is not None and result.comparisons == 3 and result.wins == pytest.approx(1.5)
    assert result.win_rate == pytest.approx(0.5) and result.low < 0.5 < result.high
    assert "good" in shown_first[0] and "bad" in shown_first[1]


def test_make_judge_picks_the_backend_and_builds_the_reference_from_the_token_cache(
    tinystories: Path, gpt2_ranks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vibe_research.lm.corpus import files_split
    from vibe_research.lm.errors import UserError
    from vibe_research.lm.tokenizer import load_tokenizer
    from vibe_research.lm.tokens import prepare_split
    from vibe_research.research.judge.scoring import make_judge
    from vibe_research.research.settings import Settings
    from vibe_research.research.workspace import Workspace

    monkeypatch.setenv("VIBE_GPT2_RANKS", str(gpt2_ranks))
    workspace = Workspace(tmp_path)
    settings = Settings.model_validate(
        {"data": {"tokenizer": "gpt2"}, "judge": {"backend": "heuristic"}}
    )
    with pytest.raises(UserError, match="vibe-research data prepare"):
        make_judge(settings, workspace, None)
    stories_file = files_split(
        "train", [str(tinystories / "train-alldata00.txt")], "text", tmp_path
    )
    prepare_split(stories_file, load_tokenizer("gpt2"), workspace.cache)
    judge = make_judge(settings, workspace, None)
    assert isinstance(judge, HeuristicJudge) and judge.rubric_version.startswith(
        "heuristic-4+kn3-gpt2-"
    )
    llm = settings.model_copy(
        update={"judge": settings.judge.model_copy(update={"backend": "llm"})}
    )
    with pytest.raises(UserError, match=r'judge.backend = "llm" needs an LLM endpoint'):
        make_judge(llm, workspace, None)
    with ScriptedOpenAIServer() as server:
        judge = make_judge(
            llm,
            workspace,
            LLMClient(LLMSettings(base_url=server.base_url), tmp_path / "calls.jsonl"),
        )
    assert isinstance(judge, LLMJudge) and judge.name == settings.llm.judge_model
