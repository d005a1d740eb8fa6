"""experiments/ngram.py as a user runs it, measured by the real evaluator."""

import math
from pathlib import Path

import numpy as np
from ngram_fixtures import TEMPLATES, few_valid_stories, run_experiment

from vibe_research.lm.evaluate import evaluate, valid_stream
from vibe_research.lm.ngram import KneserNey
from vibe_research.lm.tokenizer import load_tokenizer


def test_ngram_run_is_causal_normalised_and_scored_as_built(
    bpe_cache, tinystories, tmp_path: Path
) -> None:
    done, events = run_experiment("ngram.py", tmp_path / "run", bpe_cache, 120, "order=3")
    assert done.returncode == 0, done.stderr
    assert [e["event"] for e in events] == ["start", "done"]
    assert events[-1]["ngrams"][0] == 4097  # 4096 tokens and the story start
    valid = few_valid_stories(tinystories, tmp_path, 20)
    result = evaluate(
        TEMPLATES / "ngram.py", tmp_path / "run", bpe_cache, valid, samples=1, max_tokens=16
    )
    assert result.ok, result.reason
    assert result.checks.causal and result.checks.normalised
    # The evaluator's number is the library's own score of the same stream.
    tokenizer = load_tokenizer("bpe:4096", bpe_cache)
    stream = valid_stream(tokenizer, bpe_cache, valid).tokens
    nats = -KneserNey.load(tmp_path / "run" / "ngram.npz").logprob_stream(stream)[1:].sum()
    assert math.isclose(result.bpb, nats / math.log(2) / result.bytes, rel_tol=1e-5)


def test_knobs_change_the_model(bpe_cache, tmp_path: Path) -> None:
    sizes = {}
    for name, overrides in {
        "full": ("order=4",),
        "pruned": ("order=4", "prune=2", "discount=0.7", "interpolate=false"),
    }.items():
        done, events = run_experiment("ngram.py", tmp_path / name, bpe_cache, 120, *overrides)
        assert done.returncode == 0, done.stderr
        sizes[name] = events[-1]["ngrams"]
    assert sizes["pruned"][0] == sizes["full"][0] and sizes["pruned"][3] < sizes["full"][3] / 2
    model = KneserNey.load(tmp_path / "pruned" / "ngram.npz")
    assert not model.meta.interpolate and model.meta.prune == 2
    np.testing.assert_array_equal(model.discounts, 0.7)


def test_bad_knobs_and_overrun_budgets_exit_2_with_one_line(bpe_cache, tmp_path: Path) -> None:
    for overrides, message in [
        (("order=7",), "order from 1 to 6"),
        (("discount=big",), "discount=big"),
    ]:
        done, _ = run_experiment("ngram.py", tmp_path / "bad", bpe_cache, 120, *overrides)
        assert done.returncode == 2 and message in done.stderr
        assert len([line for line in done.stderr.splitlines() if line.startswith("error")]) == 1
    # The budget counts from process start, imports and counting included.
    done, _ = run_experiment("ngram.py", tmp_path / "late", bpe_cache, 0.05)
    assert done.returncode == 2 and "over its 0.05 s budget" in done.stderr
    assert not (tmp_path / "late" / "ngram.npz").exists()
