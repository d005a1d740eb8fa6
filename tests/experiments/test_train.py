"""The baseline trainer (templates/experiments/train.py): real trainings on real TinyStories tokens."""

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ngram_fixtures import TEMPLATES, few_valid_stories, run_experiment

from vibe_research.lm import fingerprint
from vibe_research.lm.evaluate import EvalResult, measure
from vibe_research.lm.sessions import LocalModel

TINY = (
    "n_layer=1",
    "n_head=2",
    "n_embd=32",
    "context=32",
    "batch_size=8",
    "dtype=fp32",
    "threads=1",
)


def load_train():
    spec = importlib.util.spec_from_file_location("train_template", TEMPLATES / "train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile looks the module up by name
    spec.loader.exec_module(module)
    return module


train = load_train()


def tiny_trainer(seed: int, **overrides: object):
    """A 1-block model and its Trainer on the CPU in fp32, seeded as train.py seeds a run."""
    config = (
        train.CONFIG
        | {"n_layer": 1, "n_head": 2, "n_embd": 32, "context": 16, "batch_size": 4}
        | overrides
    )
    train.check_config(config)
    torch.manual_seed(seed)
    fields = {k: config[k] for k in train.ModelConfig.__dataclass_fields__ if k != "vocab_size"}
    model = train.GPT(train.ModelConfig(vocab_size=64, **fields))
    device = torch.device("cpu")
    trainer = train.Trainer(
        model,
        train.NextTokenLoss(model),
        train.make_optimizers(model, config),
        config,
        device,
        torch.float32,
    )
    batches = train.Batches(
        np.arange(5000) % 61, config["batch_size"], config["context"], seed, device
    )
    return trainer, batches


def evaluate_run(run: Path, cache: Path, valid: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "vibe_research.lm.evaluate",
        "--entry",
        str(TEMPLATES / "train.py"),
        "--run-dir",
        str(run),
        "--cache-dir",
        str(cache),
        "--valid",
        str(valid),
        "--samples",
        "1",
        "--max-tokens",
        "4",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_five_second_training_passes_the_evaluators_contract_checks(
    bpe_cache, tinystories, tmp_path
) -> None:
    done, events = run_experiment(
        "train.py", tmp_path / "run", bpe_cache, 5, *TINY, "compile=off", "log_every=5"
    )
    assert done.returncode == 0, done.stderr
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    final = events[-1]
    assert final["tokens"] == final["steps"] * 8 * 32
    assert (final["device"], final["dtype"], final["compile"]) == ("cpu", "float32", False)
    valid = few_valid_stories(tinystories, tmp_path, 5)
    result = evaluate_run(tmp_path / "run", bpe_cache, valid)
    assert result["ok"] and result["checks"]["causal"] and result["checks"]["normalised"]
    assert math.isfinite(result["bpb"])
    assert result["sampling"]["incremental"] and result["sampling"]["probe_rows"] > 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["n_embd"] == 32
    # the model process (its answers written straight into the buffer) and this one agree
    local = EvalResult(ok=False, entry="-", run_dir="-", lm_fingerprint=fingerprint())
    model = LocalModel(train.load_model(tmp_path / "run"))
    measure(model, bpe_cache, valid, 0, 1, local, time.perf_counter())
    assert local.bpb == pytest.approx(result["bpb"], rel=1e-12)


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_the_kv_cache_decoder_and_the_answer_buffer_give_what_logprobs_gives(positions) -> None:
    torch.manual_seed(0)
    fields = {
        k: train.CONFIG[k] for k in train.ModelConfig.__dataclass_fields__ if k != "vocab_size"
    }
    fields |= {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 48, "positions": positions}
    model = train.GPT(train.ModelConfig(vocab_size=97, **fields)).eval()
    tokens = torch.randint(0, 97, (2, 48))
    full = model.logprobs(tokens)
    decoder = model.decoder()
    rows = [decoder.step(tokens[0, :7]), *(decoder.step(t[None]) for t in tokens[0, 7:])]
    torch.testing.assert_close(torch.cat(rows), full[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="context of 48"):
        decoder.step(tokens[0, :1])
    buffer = torch.empty(2, 48, 97)
    assert model.logprobs(tokens, out=buffer) is buffer
    torch.testing.assert_close(buffer, full, atol=0, rtol=0)


def test_the_cpu_attention_op_gives_what_scaled_dot_product_attention_gives() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 20, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out, weights = train.causal_attention(q, k, v)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    assert weights.shape == (6, 20, 20) and torch.all(weights.triu(1) == 0)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v), grad)
    theirs = torch.autograd.grad(expected, (q, k, v), grad)
    for mine, reference in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, reference, atol=1e-12, rtol=0)


def test_compiled_gelu_is_the_tanh_gelu() -> None:
    traced = []

    def backend(graph_module, _inputs):
        traced.extend(node.target for node in graph_module.graph.nodes)
        return graph_module.forward

    x = torch.linspace(-8, 8, 4001)
    compiled = torch.compile(train.gelu_tanh, backend=backend)(x)
    assert torch.sigmoid in traced  # the compiled form, not F.gelu
    reference = torch.nn.functional.gelu(x.double(), approximate="tanh").float()
    torch.testing.assert_close(compiled, reference, atol=1e-6, rtol=1e-6)


def test_bf16_training_on_the_cpu_attends_through_the_op_and_matches_the_flash_kernel(
    monkeypatch,
) -> None:
    trainer, batches = tiny_trainer(seed=0)
    model, (inputs, targets) = trainer.model, batches.next()
    calls = []

    def counted(*tensors):
        calls.append(tensors[0].dtype)
        return train.define_causal_attention()(*tensors)

    monkeypatch.setattr(train, "causal_attention", counted)
    grads = []
    for use_op in (True, False):
        monkeypatch.setattr(train, "bf16_cpu_training", lambda x, use=use_op: use)
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            train.NextTokenLoss(model)(inputs, targets).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert calls == [torch.bfloat16]  # one block, and only while the op was chosen
    assert torch.cosine_similarity(grads[0], grads[1], dim=0) > 0.999
    monkeypatch.undo()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = model.blocks[0].attn.qkv(inputs.new_zeros(1, 1, 32, dtype=torch.float32))
        assert train.bf16_cpu_training(q)
        with torch.no_grad():
            assert not train.bf16_cpu_training(model.blocks[0].attn.qkv(torch.zeros(1, 32)))
    assert not train.bf16_cpu_training(torch.zeros(2))
    long = torch.zeros(1, 1, train.MAX_OP_CONTEXT + 1, 8, dtype=torch.bfloat16)
    assert not train.bf16_cpu_training(long)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("n_layers=2", "n_layers: unknown key"),
        ("n_layer=two", "n_layer=two: expected int"),
        ("norm=batchnorm", "norm=batchnorm: must be one of layernorm, rmsnorm"),
        ("n_head=5", "n_embd=192 must split into n_head=5 heads"),
        ("warmdown_frac=1.5", "warmdown_frac=1.5: must lie in [0, 1]"),
    ],
)
def test_bad_set_fails_with_one_line_and_exit_2(tmp_path, override: str, message: str) -> None:
    done, events = run_experiment("train.py", tmp_path / "run", tmp_path, 5, override)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if not line.startswith("override:")]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert events == [] and not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.slow
def test_budget_holds_with_compile_on_and_the_model_learns(
    bpe_cache, tinystories, tmp_path
) -> None:
    budget = 60  # a cold compile is on the clock: 20-40 s of it on a slow period of a 2-core VM
    started = time.monotonic()
    done, events = run_experiment(
        "train.py", tmp_path / "run", bpe_cache, budget, *TINY, "compile=on"
    )
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert (
        events[-1]["event"] == "done" and events[-1]["compile"] is True and events[-1]["steps"] > 50
    )
    assert wall <= budget, f"the process ran {wall:.1f} s on a {budget} s budget"
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert losses[-1] < losses[0] - 1.0, "training should move the loss well off log(4096) = 8.3"
    result = evaluate_run(tmp_path / "run", bpe_cache, few_valid_stories(tinystories, tmp_path, 5))
    assert result["ok"] and result["bpb"] < math.log2(4096) * result["tokens"] / result["bytes"]


def test_training_is_deterministic_for_a_seed_on_cpu() -> None:
    states = []
    for _ in range(2):
        trainer, batches = tiny_trainer(seed=3)
        for step in range(4):
            trainer.step(*batches.next(), step, time_frac=step / 4)
        states.append(trainer.model.state_dict())
    other, batches = tiny_trainer(seed=4)
    other.step(*batches.next(), 0, time_frac=0.0)
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name
    assert not torch.equal(states[0]["wte.weight"], other.model.state_dict()["wte.weight"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"norm": "layernorm", "mlp": "swiglu", "positions": "learned", "tie_embeddings": False},
        {"mlp": "relu2", "optimizer": "muon"},
    ],
)
def test_every_architecture_option_trains_and_exposes_features_and_head(overrides: dict) -> None:
    trainer, batches = tiny_trainer(seed=0, warmup_steps=1, **overrides)
    first, _ = trainer.step(*batches.next(), 0, time_frac=0.0)
    for step in range(1, 30):
        last, _ = trainer.step(*batches.next(), step, time_frac=0.5)
    assert last < first - 0.5, (first, last)
    model = trainer.model.eval()
    tokens = batches.next()[0]
    with torch.no_grad():
        features = model.features(tokens)
        assert features.shape == (4, 16, 32)
        torch.testing.assert_close(
            torch.log_softmax(model.head(features), -1), model.logprobs(tokens)
        )


def test_schedule_warms_up_by_steps_and_warms_down_by_time() -> None:
    config = train.CONFIG | {"warmup_steps": 10, "warmdown_frac": 0.5}
    assert train.lr_scale(0, 0.0, config) == pytest.approx(0.1)
    assert train.lr_scale(20, 0.25, config) == 1.0
    assert train.lr_scale(20, 0.75, config) == pytest.approx(0.5)
    assert train.lr_scale(20, 1.0, config) == 0.0


def test_missing_checkpoint_names_the_training_command(tmp_path) -> None:
    with pytest.raises(train.UserError, match=r"model.pt is missing: train first"):
        train.load_model(tmp_path)


def test_sigterm_ends_the_training_at_the_next_step_and_saves(bpe_cache, tmp_path) -> None:
    """How the smoke run stops a trainer after its first step: the model is saved, exit 0."""
    command = [
        sys.executable,
        str(TEMPLATES / "train.py"),
        "--out",
        str(tmp_path / "run"),
        "--budget",
        "120",
        "--set",
        "log_every=1",
        *(arg for knob in (*TINY, "compile=off") for arg in ("--set", knob)),
    ]
    process = subprocess.Popen(
        command,
        env=os.environ | {"VIBE_CACHE_DIR": str(bpe_cache)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith('{"event": "step"'):
            process.send_signal(signal.SIGTERM)
            break
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    done = [json.loads(line) for line in rest.splitlines() if line.startswith('{"event": "done"')]
    assert done and done[0]["elapsed_s"] < 60 and (tmp_path / "run" / "model.pt").is_file()
