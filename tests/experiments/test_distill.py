"""Distillation from an n-gram teacher: the teacher's targets, the KL, and a real training run."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from ngram_fixtures import TEMPLATES, contract_in_process, run_experiment

from vibe_research.lm.checks import CAUSAL_TOLERANCE
from vibe_research.lm.entry import load_model
from vibe_research.lm.scoring import NORM_TOLERANCE
from vibe_research.lm.tokens import open_split


def load_distill():
    spec = importlib.util.spec_from_file_location("distill_template", TEMPLATES / "distill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


distill = load_distill()


@pytest.fixture(scope="module")
def teacher(bpe_cache):
    tokens = np.asarray(open_split("train", "bpe:4096", bpe_cache).tokens)
    return distill.build_teacher(tokens, 4096, 3), tokens


def test_teacher_targets_are_the_ngram_distributions(teacher) -> None:
    model, tokens = teacher
    inputs = torch.from_numpy(tokens[:64].astype(np.int64)).view(2, 32)
    probs = model.targets(inputs)
    assert probs.shape == (2, 32, 4096) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 32), atol=1e-5, rtol=0)
    # Row 0 starts with the stream's eot: position t scores tokens[t + 1] as the library does.
    stream = model.model.logprob_stream(tokens[:33].astype(np.int64))[1:]
    picked = (
        probs[0]
        .gather(-1, torch.from_numpy(tokens[1:33].astype(np.int64))[:, None])
        .squeeze(-1)
        .double()
        .log()
    )
    np.testing.assert_allclose(picked.numpy(), stream, atol=1e-5)
    assert model.model.eot == int(tokens[0])


def test_kl_is_zero_at_the_teacher_and_positive_elsewhere(teacher) -> None:
    model, tokens = teacher
    inputs = torch.from_numpy(tokens[:48].astype(np.int64)).view(3, 16)
    probs = model.targets(inputs)
    assert distill.distill_loss(probs.log(), probs).abs() < 1e-5
    logits = torch.randn(3, 16, 4096, requires_grad=True)
    loss = distill.distill_loss(logits, probs)
    expected = (probs * (probs.log() - torch.log_softmax(logits, -1))).sum(-1).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert loss > 0 and logits.grad.abs().sum() > 0


def test_top_k_kl_compares_the_teachers_likeliest_tokens() -> None:
    teacher_probs = torch.softmax(torch.randn(2, 5, 20000), dim=-1)
    logits = torch.randn(2, 5, 20000)
    loss = distill.distill_loss(logits, teacher_probs)  # V > TOP_K_ABOVE: top-k by default
    top, index = teacher_probs.topk(distill.TOP_K, dim=-1)
    top = top / top.sum(-1, keepdim=True)
    student = torch.log_softmax(logits, -1).gather(-1, index)
    torch.testing.assert_close(loss, (top * (top.log() - student)).sum(-1).mean())
    assert not math.isclose(
        loss.item(), distill.distill_loss(logits, teacher_probs, top_k=20000).item()
    )


@pytest.mark.slow
def test_first_steps_train_against_the_teacher(bpe_cache, tmp_path: Path) -> None:
    """train.py with distill_steps=3 and alpha=1: those steps' loss is the teacher KL it logs; the
    distilled model keeps the ModelAPI contract."""
    tiny = (
        "n_layer=1",
        "n_head=2",
        "n_embd=32",
        "context=32",
        "batch_size=4",
        "compile=off",
        "dtype=fp32",
        "log_every=1",
        "distill_steps=3",
        "distill_alpha=1.0",
        "distill_order=3",
        "threads=1",
    )
    done, events = run_experiment("train.py", tmp_path / "run", bpe_cache, 25, *tiny)
    assert done.returncode == 0, done.stderr
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) > 3, "the run ended before leaving distillation"
    for event in steps[:3]:
        assert event["distill_loss"] > 0 and math.isclose(
            event["loss"], event["distill_loss"], abs_tol=1e-3
        )
    assert all("distill_loss" not in e for e in steps[3:])
    model = load_model(TEMPLATES / "train.py", tmp_path / "run")
    stream = np.asarray(open_split("valid", "bpe:4096", bpe_cache).tokens[:600], dtype=np.int64)
    change, error = contract_in_process(model, stream)
    assert change <= CAUSAL_TOLERANCE and error <= NORM_TOLERANCE, (change, error)
