"""Shallow fusion: its heads, the EM fit, the refusal to fit on validation, and a real fused run."""

import importlib.util
import itertools
import math
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from ngram_fixtures import TEMPLATES, contract_in_process, few_valid_stories, run_experiment

from vibe_research.lm.checks import CAUSAL_TOLERANCE
from vibe_research.lm.evaluate import evaluate
from vibe_research.lm.scoring import NORM_TOLERANCE
from vibe_research.lm.tokens import open_split


def load_fusion():
    spec = importlib.util.spec_from_file_location("fusion_template", TEMPLATES / "fusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fusion = load_fusion()


def test_cache_head_weights_earlier_tokens_by_decay() -> None:
    probs = fusion.cache_probs(torch.tensor([[3, 1, 3]]), 5, 0.5)
    torch.testing.assert_close(probs[0, 0], torch.tensor([0, 0, 0, 1.0, 0]))
    torch.testing.assert_close(probs[0, 1], torch.tensor([0, 2 / 3, 0, 1 / 3, 0]))
    # position 2: token 3 at lags 0 and 2 (1 + 0.25), token 1 at lag 1 (0.5), over 1.75
    torch.testing.assert_close(probs[0, 2], torch.tensor([0, 0.5 / 1.75, 0, 1.25 / 1.75, 0]))


def test_knn_head_spreads_a_softmax_over_the_neighbours_tokens() -> None:
    keys = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]], dtype=np.float32)
    index = faiss.IndexFlatL2(2)
    index.add(keys)
    head = fusion.KnnHead(
        index, np.array([4, 4, 1], dtype=np.int32), k=2, temperature=1.0, vocab_size=6
    )
    probs = head.probs(torch.tensor([[0.0, 0.0]]))
    # neighbours: key 0 (distance 0, token 4) and key 1 (distance 1, token 4): all mass on token 4
    torch.testing.assert_close(probs[0], torch.tensor([0, 0, 0, 0, 1.0, 0]))
    probs = fusion.KnnHead(index, np.array([4, 2, 1], dtype=np.int32), 3, 1.0, 6).probs(
        torch.tensor([[0.0, 0.0]])
    )
    expected = torch.softmax(-torch.tensor([0.0, 1.0, 9.0]), dim=0)
    torch.testing.assert_close(probs[0, [4, 2, 1]], expected)
    assert math.isclose(probs.sum().item(), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_a_query_finds_the_same_neighbours_however_many_come_with_it(threads: int) -> None:
    """faiss rounds differently when it has fewer queries than threads; the head must not."""
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((15_000, 32)).astype(np.float32)
    index = faiss.IndexFlatL2(32)
    index.add(keys)
    values = rng.integers(0, 50, len(keys)).astype(np.int32)
    queries = torch.from_numpy(rng.standard_normal((12, 32)).astype(np.float32))
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        head = fusion.KnnHead(index, values, k=16, temperature=1.0, vocab_size=50)
        together = head.neighbours(queries)
        for size in (1, 2, 3, 5):
            parts = [head.neighbours(queries[i : i + size]) for i in range(0, len(queries), size)]
            assert torch.equal(torch.cat([d for d, _ in parts]), together[0]), size
            assert torch.equal(torch.cat([t for _, t in parts]), together[1]), size
        assert faiss.omp_get_max_threads() == threads
    finally:
        faiss.omp_set_num_threads(before)


def test_em_recovers_mixture_weights() -> None:
    rng = np.random.default_rng(0)
    truth = np.array([0.6, 0.3, 0.1])
    # Three parts that each explain a disjoint share of the tokens: EM must find those shares.
    source = rng.choice(3, size=20_000, p=truth)
    probs = np.full((len(source), 3), 1e-3)
    probs[np.arange(len(source)), source] = 0.9
    np.testing.assert_allclose(fusion.fit_weights(probs, 200), truth, atol=0.02)


def test_the_knn_temperature_that_mixes_best_is_picked() -> None:
    rng = np.random.default_rng(1)
    others = rng.uniform(0.01, 0.2, size=(5000, 2))
    candidates = rng.uniform(0.0, 0.05, size=(5000, 4))
    candidates[:, 2] += 0.5  # the third temperature predicts the tokens far better
    assert fusion.pick_temperature(others, candidates, 30) == 2


def test_fitting_on_validation_is_refused(tmp_path: Path) -> None:
    done, _ = run_experiment(
        "fusion.py", tmp_path / "run", tmp_path, 60, "base_run=/nowhere", "fit_split=valid"
    )
    assert done.returncode == 2
    assert "fit_split=valid" in done.stderr and "leak" in done.stderr
    assert not (tmp_path / "run" / fusion.RUN_FILE).exists()


@pytest.fixture(scope="module")
def fused_run(bpe_cache, tmp_path_factory) -> Path:
    """A tiny transformer trained for seconds, fused with all three heads."""
    root = tmp_path_factory.mktemp("fusion")
    tiny = (
        "n_layer=1",
        "n_head=2",
        "n_embd=32",
        "context=64",
        "batch_size=8",
        "compile=off",
        "dtype=fp32",
        "threads=1",
    )
    done, _ = run_experiment("train.py", root / "base", bpe_cache, 12, *tiny)
    assert done.returncode == 0, done.stderr
    done, events = run_experiment(
        "fusion.py",
        root / "fused",
        bpe_cache,
        120,
        f"base_run={root / 'base'}",
        "knn_memory_mb=2",
        "fit_tokens=4096",
        "ngram_order=3",
    )
    assert done.returncode == 0, done.stderr
    assert [e["event"] for e in events] == ["start", "eval", "done"]
    return root / "fused"


@pytest.mark.slow
def test_fused_run_is_fitted_on_train_and_passes_the_evaluator(
    fused_run, bpe_cache, tinystories, tmp_path
) -> None:
    run = fusion.FusionRun.model_validate_json((fused_run / fusion.RUN_FILE).read_text())
    assert set(run.weights) == {"lm", "ngram", "knn", "cache"}
    assert math.isclose(sum(run.weights.values()), 1.0) and min(run.weights.values()) > 0
    # EM's optimum is at least as good as any single part on the held-out train tokens.
    assert run.fit_nats["mixture"] <= min(run.fit_nats[name] for name in run.weights) + 1e-9
    result = evaluate(
        TEMPLATES / "fusion.py",
        fused_run,
        bpe_cache,
        few_valid_stories(tinystories, tmp_path, 5),
        samples=1,
        max_tokens=8,
    )
    assert result.ok, result.reason
    assert result.checks.causal and result.checks.normalised
    assert result.sampling.incremental and result.sampling.probe_rows > 0


@pytest.mark.slow
def test_the_decoder_steps_as_logprobs_answers(fused_run, bpe_cache) -> None:
    """Steps of any size give the rows logprobs gives the whole sequence (the kNN head's
    neighbours included: its features are computed as logprobs computes them)."""
    model = fusion.load_model(fused_run)
    stream = open_split("valid", "bpe:4096", bpe_cache).tokens[: model.context_length]
    tokens = torch.from_numpy(np.asarray(stream, dtype=np.int64))
    decoder = model.decoder()
    cuts = [0, 10, 11, 12, 30, len(tokens)]
    steps = torch.cat([decoder.step(tokens[a:b]) for a, b in itertools.pairwise(cuts)])
    whole = model.logprobs(tokens[None])[0]
    assert steps.shape == whole.shape
    torch.testing.assert_close(steps, whole, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="context"):
        decoder.step(tokens[:1])


@pytest.mark.slow
def test_knn_probabilities_of_the_fit_are_the_heads(fused_run, bpe_cache) -> None:
    """The temperature search scores targets as the head itself does, at the fitted temperature."""
    model = fusion.load_model(fused_run)
    assert model.knn.temperature in fusion.KNN_TEMPERATURES  # fitted: the knob defaults to 0
    stream = np.asarray(open_split("valid", "bpe:4096", bpe_cache).tokens[:300], dtype=np.int64)
    alone = fusion.FusedModel(model.base, None, model.knn, None, {})
    expected = fusion.target_probs(alone, stream, int(stream[0]), 4)["knn"]
    found = fusion.knn_target_probs(
        model.base, model.knn, stream, int(stream[0]), 4, (model.knn.temperature,)
    )[:, 0]
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["ngram", "knn", "cache"])
def test_every_head_alone_is_causal_and_normalised(fused_run, bpe_cache, head) -> None:
    model = fusion.load_model(fused_run)
    model.weights = {"lm": 0.5, head: 0.5}
    if head != "ngram":
        model.ngram = None
    if head != "knn":
        model.knn = None
    if head != "cache":
        model.cache_decay = None
    stream = np.asarray(open_split("valid", "bpe:4096", bpe_cache).tokens[:1500], dtype=np.int64)
    assert set(model.parts(torch.from_numpy(stream[None, :64]))) == {"lm", head}
    change, error = contract_in_process(model, stream)
    assert change <= CAUSAL_TOLERANCE and error <= NORM_TOLERANCE, (change, error)
    if head == "knn":  # neighbours jump at near ties: a row must get bit-identical features
        assert change == 0.0
