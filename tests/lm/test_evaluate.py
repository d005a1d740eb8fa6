"""The evaluator against models whose answers are known: uniform, add-one unigram, cheaters, a real transformer."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lm_helpers import STORIES, write_txt

import vibe_research.lm.reference as reference
from vibe_research.lm.errors import UserError
from vibe_research.lm.evaluate import EvalResult, evaluate, story_windows
from vibe_research.lm.tokens import open_split

REFERENCE = Path(reference.__file__)
TINY_GPT = Path(__file__).parent / "entries" / "tiny_gpt.py"


def run_dir(tmp_path: Path, name: str, config: dict, file: str = "config.json") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / file).write_text(json.dumps(config))
    return folder


def evaluator(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vibe_research.lm.evaluate", "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_uniform_bpb_is_log2_v_times_tokens_over_bytes(real_cache: Path, tmp_path: Path) -> None:
    folder = run_dir(
        tmp_path,
        "uniform",
        {"kind": "uniform", "tokenizer": "bpe:4096", "vocab_size": 4096, "context_length": 256},
        reference.MODEL_FILE,
    )
    result = evaluate(REFERENCE, folder, real_cache, samples=0)
    valid = open_split("valid", "bpe:4096", real_cache).manifest
    assert result.ok and (result.tokens, result.bytes, result.stories) == (
        valid.tokens - 1,
        valid.bytes,
        500,
    )
    assert result.bpb == pytest.approx(math.log2(4096) * result.tokens / result.bytes, abs=1e-9)
    assert result.perplexity == pytest.approx(4096, rel=1e-9)


def test_unigram_matches_its_closed_form(real_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "unigram"
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "vibe_research.lm.reference",
            "--out",
            str(out),
            "--set",
            "kind=unigram",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"VIBE_CACHE_DIR": str(real_cache)},
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout.splitlines()[-1])["event"] == "done"
    result = evaluate(REFERENCE, out, real_cache, samples=0)
    train = np.asarray(open_split("train", "bpe:4096", real_cache).tokens, dtype=np.int64)
    valid = open_split("valid", "bpe:4096", real_cache)
    counts = np.zeros(4096)
    np.add.at(counts, train[1:], 1)
    bits = -np.log2(
        (counts[np.asarray(valid.tokens[1:], dtype=np.int64)] + 1) / (len(train) - 1 + 4096)
    ).sum()
    assert result.ok and result.bpb == pytest.approx(bits / valid.manifest.bytes, abs=1e-6)
    assert 2.0 < result.bpb < 2.5


def test_the_peeking_model_is_rejected(real_cache: Path, tmp_path: Path) -> None:
    folder = run_dir(
        tmp_path,
        "peeking",
        {"kind": "peeking", "tokenizer": "bpe:4096", "vocab_size": 4096, "context_length": 256},
        reference.MODEL_FILE,
    )
    done = evaluator(
        "--entry",
        str(REFERENCE),
        "--run-dir",
        str(folder),
        "--out",
        str(tmp_path / "r.json"),
        cache=real_cache,
    )
    assert done.returncode == 3
    result = EvalResult.model_validate_json((tmp_path / "r.json").read_text())
    assert not result.ok and result.bpb is None and result.reason.startswith("not causal")
    assert result.checks.normalised and not result.checks.causal


def test_a_real_transformer_passes_and_an_unmasked_one_is_caught(
    real_cache: Path, tmp_path: Path
) -> None:
    config = {
        "tokenizer": "bpe:4096",
        "vocab_size": 4096,
        "context_length": 64,
        "dim": 32,
        "layers": 1,
        "heads": 2,
    }
    valid = write_txt(tmp_path / "few.txt", STORIES * 4)
    causal = evaluate(
        TINY_GPT,
        run_dir(tmp_path, "causal", config | {"peek": False}),
        real_cache,
        valid,
        samples=2,
        max_tokens=8,
    )
    assert causal.ok and causal.checks.max_causal_change <= 1e-4 and causal.stories == 12
    assert causal.bytes == sum(len(story.encode()) for story in STORIES * 4)
    assert len(causal.samples) == 2 and all(sample.tokens <= 8 for sample in causal.samples)
    peeking = evaluate(
        TINY_GPT, run_dir(tmp_path, "peek", config | {"peek": True}), real_cache, valid, samples=0
    )
    assert not peeking.ok and "not causal" in peeking.reason


BROKEN_ENTRY = """
import math
import torch
from helper import VOCAB  # a sibling module: the entry's folder is on sys.path

class Model:
    vocab_size, tokenizer, context_length = VOCAB, "bpe:4096", 32
    def __init__(self, mode):
        self.mode = mode
    def logprobs(self, tokens):
        if self.mode == "logits":
            return torch.zeros(*tokens.shape, VOCAB)
        if self.mode == "shape":
            return torch.zeros(tokens.shape[0], VOCAB)
        if self.mode == "crash":
            raise RuntimeError("out of memory")
        return torch.full((VOCAB,), -math.log(VOCAB)).expand(*tokens.shape, VOCAB)

def load_model(run_dir):
    mode = (run_dir / "mode").read_text()
    if mode == "load":
        raise FileNotFoundError("model.pt")
    return Model(mode)
"""


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("logits", "not normalised"),
        ("shape", "shape [B, T, V]"),
        ("crash", "logprobs raised RuntimeError: out of memory"),
        ("load", "load_model("),
    ],
)
def test_contract_breakers_are_rejected_with_a_reason(
    real_cache: Path, tmp_path: Path, mode: str, reason: str
) -> None:
    (tmp_path / "helper.py").write_text("VOCAB = 4096\n")
    entry = tmp_path / "entry.py"
    entry.write_text(BROKEN_ENTRY)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "mode").write_text(mode)
    result = evaluate(entry, folder, real_cache, samples=0)
    assert not result.ok and reason in result.reason


def test_the_well_behaved_variant_of_that_entry_scores(real_cache: Path, tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("VOCAB = 4096\n")
    (tmp_path / "entry.py").write_text(BROKEN_ENTRY)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mode").write_text("uniform")
    assert evaluate(
        tmp_path / "entry.py", tmp_path / "run", real_cache, samples=0
    ).bpb == pytest.approx(12 * 99824 / 403555, abs=1e-6)


def test_bad_input_exits_2_with_one_line(real_cache: Path, tmp_path: Path) -> None:
    done = evaluator(
        "--entry", str(tmp_path / "missing.py"), "--run-dir", str(tmp_path), cache=real_cache
    )
    assert (
        done.returncode == 2
        and done.stderr.strip().count("\n") == 0
        and "no such experiment file" in done.stderr
    )
    with pytest.raises(UserError, match="no such run folder"):
        evaluate(REFERENCE, tmp_path / "nothing", real_cache)


def test_windows_predict_every_token_once() -> None:
    eot = 9
    stream = np.array([eot, 1, 2, 3, 4, 5, eot, 6, eot])
    windows = story_windows(stream, eot, context_length=2)
    assert windows == [(0, 2), (2, 2), (4, 2), (6, 2)]
    targets = [t for start, length in windows for t in range(start + 1, start + length + 1)]
    assert targets == list(range(1, len(stream)))
    with pytest.raises(UserError, match="must start with the end-of-story token"):
        story_windows(np.array([1, 2, eot]), eot, 4)
