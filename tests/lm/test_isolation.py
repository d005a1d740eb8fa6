"""The evaluator against hostile models (tests/lm/entries): each attack is rejected with a reason
or measured honestly. These run the real two processes without the OS sandbox; what only the
sandbox stops (reading the validation cache, writing eval.json, files and IPC as memory, the
environment) is tested through the runner and the CLI in tests/runs/test_evaluation_sandbox.py.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vibe_research.lm import fingerprint
from vibe_research.lm.evaluate import EvalResult, evaluate, measure
from vibe_research.lm.generate import SPOT_STEPS
from vibe_research.lm.sessions import LocalModel, ModelProcess

ENTRIES = Path(__file__).parent / "entries"


def run_folder(tmp_path: Path, name: str = "run", **files: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def through_the_model_process(
    entry: str, cache: Path, folder: Path, samples: int = 0, **settings: object
) -> EvalResult:
    return evaluate(ENTRIES / entry, folder, cache, samples=samples, max_tokens=60, **settings)


def in_this_process(entry: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> EvalResult:
    """The same checks on the entry's model loaded here: what a single-process evaluator saw."""
    monkeypatch.setenv("VIBE_CACHE_DIR", str(cache))
    monkeypatch.syspath_prepend(str(ENTRIES))
    spec = importlib.util.spec_from_file_location(f"hostile_{Path(entry).stem}", ENTRIES / entry)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = EvalResult(ok=False, entry=entry, run_dir="-", lm_fingerprint=fingerprint())
    measure(
        LocalModel(module.load_model(Path("."))), cache, None, 0, 1, result, time.perf_counter()
    )
    result.ok = True
    return result


@pytest.fixture(scope="module")
def honest(bytes_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> EvalResult:
    result = through_the_model_process(
        "bigram.py", bytes_cache, tmp_path_factory.mktemp("honest"), samples=2
    )
    assert result.ok, result.reason
    return result


def test_an_honest_model_scores_the_same_through_its_process_as_in_this_one(
    honest: EvalResult, bytes_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = in_this_process("bigram.py", bytes_cache, monkeypatch)
    assert honest.bpb == pytest.approx(local.bpb, rel=1e-12) and 2.0 < honest.bpb < 4.0
    checks = honest.checks
    assert checks.causal and checks.normalised and checks.max_causal_change == 0.0
    assert checks.windows_checked == honest.stories == 20 and checks.rows_checked > 20
    # every scored row, every re-asked row and every sampled distribution was checked
    assert checks.rows_normalised >= honest.tokens + checks.rows_checked
    spots = sum(min(SPOT_STEPS, sample.tokens) for sample in honest.samples)
    assert len(honest.samples) == 2 and honest.sampling.steps_checked == spots > 0


def test_rewriting_the_scorer_from_load_model_changes_nothing(
    honest: EvalResult, bytes_cache: Path, tmp_path: Path
) -> None:
    result = through_the_model_process("patches_scorer.py", bytes_cache, run_folder(tmp_path))
    assert result.ok and result.bpb == honest.bpb and result.bytes == honest.bytes


def test_a_model_causal_only_for_its_first_calls_is_rejected(
    bytes_cache: Path, tmp_path: Path
) -> None:
    result = through_the_model_process("cheats_after_calls.py", bytes_cache, run_folder(tmp_path))
    assert not result.ok and result.reason.startswith("not causal"), result.reason
    assert result.bpb is None and result.checks.normalised and not result.checks.causal
    assert result.checks.max_causal_change > 0.1


def test_memory_of_earlier_requests_passes_checks_in_one_process_and_fails_across_sessions(
    honest: EvalResult, bytes_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model remembers every window and answers a re-asked, cut window as it answered the
    whole: asked again in the same process, its cheat looks consistent."""
    fooled = in_this_process("remembers.py", bytes_cache, monkeypatch)
    assert fooled.ok and fooled.checks.causal and fooled.bpb < honest.bpb - 0.5
    result = through_the_model_process("remembers.py", bytes_cache, run_folder(tmp_path))
    assert not result.ok and result.reason.startswith("not causal"), result.reason


def test_learning_from_the_validation_batches_it_was_sent_is_rejected(
    bytes_cache: Path, tmp_path: Path
) -> None:
    result = through_the_model_process(
        "remembers_earlier_calls.py", bytes_cache, run_folder(tmp_path)
    )
    assert not result.ok and result.reason.startswith("not causal"), result.reason


def test_rows_that_read_their_batch_mates_are_rejected(bytes_cache: Path, tmp_path: Path) -> None:
    result = through_the_model_process("leaks_rows.py", bytes_cache, run_folder(tmp_path))
    assert not result.ok and result.reason.startswith("not causal"), result.reason


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("nan", "not normalised"),
        ("shape", "shape [B, T, V]"),
        ("ints", "must return a float tensor"),
        ("exits", "ended while answering logprobs (exit 7)"),
        ("segfaults", "ended while answering logprobs (signal 11)"),
        ("garbage", "broke the protocol while loading the model"),
    ],
)
def test_broken_answers_are_rejected_with_a_reason(
    bytes_cache: Path, tmp_path: Path, mode: str, reason: str
) -> None:
    result = through_the_model_process(
        "misbehaves.py", bytes_cache, run_folder(tmp_path, mode=mode)
    )
    assert not result.ok and reason in result.reason, result.reason


def test_an_answer_rewritten_while_the_scorer_reads_it_is_rejected(
    bytes_cache: Path, tmp_path: Path
) -> None:
    """Whichever version of each value the scorer happens to see, it never scores one the
    normalisation check did not sum."""
    result = through_the_model_process("scribbles.py", bytes_cache, run_folder(tmp_path))
    assert not result.ok, result.bpb
    assert "changed its answer while it was read" in result.reason or result.reason.startswith(
        "not normalised"
    ), result.reason


def test_a_model_that_never_answers_is_rejected_at_the_deadline(
    bytes_cache: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    result = through_the_model_process(
        "misbehaves.py", bytes_cache, run_folder(tmp_path, mode="sleeps"), timeout_s=15
    )
    assert not result.ok and "gave no answer while answering logprobs" in result.reason
    assert time.monotonic() - started < 45


def test_no_process_a_session_starts_outlives_it(bytes_cache: Path, tmp_path: Path) -> None:
    """Each session leaves a daemon; the next one finds the last one dead (else it refuses)."""
    pid_file = tmp_path / "daemon.pid"
    folder = run_folder(tmp_path, **{"config.json": json.dumps({"pid_file": str(pid_file)})})
    result = through_the_model_process("lingers.py", bytes_cache, folder, samples=1)
    assert result.ok, result.reason
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_a_decoder_that_steers_the_samples_is_caught_by_the_spot_checks(
    bytes_cache: Path, tmp_path: Path
) -> None:
    result = through_the_model_process(
        "decoder_cheats.py", bytes_cache, run_folder(tmp_path), samples=2
    )
    assert not result.ok and "a sampled step's distribution differs" in result.reason
    assert result.bpb is not None  # the scoring itself was honest: the samples were not


def test_every_session_is_a_new_process_with_working_threads(
    bytes_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    deadline = time.monotonic() + 120
    with ModelProcess.spawn(
        ENTRIES / "bigram.py", run_folder(tmp_path), deadline, bytes_cache
    ) as process:
        pids = set()
        for _ in range(3):
            with process.session() as session:
                tokens = np.full((2, 5), 65, dtype=np.int64)
                answer = session.logprobs(tokens, np.array([5, 3]))
                assert [block.shape for block in answer.rows] == [(5, 257), (3, 257)]
                assert session.info.threads == 2
                pids.add(session.pid)
        assert len(pids) == 3 and process.process.pid not in pids


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_model_is_loaded_on_the_gpu_in_every_session(
    honest: EvalResult, bytes_cache: Path, tmp_path: Path
) -> None:
    result = through_the_model_process("on_cuda.py", bytes_cache, run_folder(tmp_path), samples=2)
    assert result.ok, result.reason
    assert result.bpb == pytest.approx(honest.bpb, rel=1e-9)


def test_the_model_process_never_runs_in_the_scorer() -> None:
    """The scorer's modules import no experiment code and no torch (the model side's)."""
    code = (
        "import sys, vibe_research.lm.evaluate, vibe_research.lm.generate;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'bigram'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
