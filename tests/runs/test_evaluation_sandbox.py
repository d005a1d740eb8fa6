"""The evaluation's two processes in the real sandbox: what only the OS stops. Hostile entries
(tests/lm/entries) run in the toy workspace of tests/sandbox/toy.py, through the runner's
evaluation phase and through the `vibe-research evaluate` and `sample` commands."""

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from toy import SECRET, spec_for

from vibe_research.lm.evaluate import EvalResult
from vibe_research.lm.evaluate import evaluate as evaluate_unsandboxed
from vibe_research.lm.generate import SPOT_STEPS
from vibe_research.runs.executor import LocalExecutor
from vibe_research.runs.runner import evaluate
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import probe

pytestmark = pytest.mark.skipif(
    not probe().active("landlock-files"),
    reason="needs Landlock (Linux 5.13+ with landlock enabled)",
)

HOSTILE = Path(__file__).parents[1] / "lm" / "entries"
TEMPLATES = Path(__file__).parents[2] / "vibe_research" / "templates" / "experiments"
VIBE = Path(sys.executable).parent / "vibe-research"


@pytest.fixture
def hostile(workspace: Path) -> Path:
    """The toy workspace with the hostile entries in its experiments/."""
    for entry in HOSTILE.glob("*.py"):
        shutil.copy(entry, workspace / "experiments" / entry.name)
    return workspace


def prepared_run(workspace: Path, entry: str, run_id: str, **files: str) -> RunSpec:
    spec = spec_for(workspace, entry, run_id)
    spec.run_dir.mkdir(parents=True)
    for name, text in files.items():
        (spec.run_dir / name).write_text(text)
    return spec


def evaluated(spec: RunSpec) -> tuple[str, str, EvalResult | None]:
    policy = SandboxPolicy()
    return evaluate(spec, policy, probe(policy))


def test_a_model_cannot_write_its_own_eval_json(hostile: Path, home: Path) -> None:
    spec = prepared_run(hostile, "writes_eval_json.py", "writes")
    outcome, reason, result = evaluated(spec)
    assert outcome == "sandbox_violation" and "Permission denied" in reason, reason
    stored = EvalResult.model_validate_json((spec.run_dir / "eval.json").read_text())
    assert stored == result and not stored.ok and stored.bpb is None


def test_load_model_cannot_read_the_validation_tokens(hostile: Path, home: Path) -> None:
    outcome, reason, _ = evaluated(prepared_run(hostile, "reads_valid.py", "reads"))
    assert outcome == "sandbox_violation" and "Permission denied" in reason, reason


def test_memory_kept_in_files_dies_with_its_session(
    hostile: Path, home: Path, tmp_path: Path
) -> None:
    """Without the sandbox the cheat's files carry it from the main pass into the check session
    and it passes, far below the honest score; in the sandbox its one writable folder is emptied
    between sessions and every other place is refused."""
    config = {"config.json": json.dumps({"memory": str(tmp_path / "memory.pkl")})}
    spec = prepared_run(hostile, "file_memory.py", "memory", **config)
    fooled = evaluate_unsandboxed(spec.entry_path, spec.run_dir, spec.cache_dir, samples=0)
    honest = evaluate_unsandboxed(
        hostile / "experiments" / "bigram.py", spec.run_dir, spec.cache_dir, samples=0
    )
    assert fooled.ok and fooled.bpb < honest.bpb - 0.5, (fooled.reason, fooled.bpb, honest.bpb)
    (tmp_path / "memory.pkl").unlink()
    outcome, reason, _ = evaluated(spec)
    assert outcome == "bad_model" and reason.startswith("not causal"), reason
    assert not (tmp_path / "memory.pkl").exists()


def test_system_v_shared_memory_is_refused(hostile: Path, home: Path) -> None:
    outcome, reason, _ = evaluated(prepared_run(hostile, "sysv_memory.py", "sysv"))
    assert outcome == "sandbox_violation" and "shmget: Operation not permitted" in reason, reason


def test_the_model_process_reads_the_run_it_builds_on_and_no_other_folder(
    hostile: Path, home: Path
) -> None:
    base = prepared_run(hostile, "bigram.py", "base", **{"model.txt": "weights"})
    spec = prepared_run(hostile, "builds_on.py", "fused")
    spec = spec.model_copy(update={"overrides": {"base_run": str(base.run_dir)}})
    (spec.run_dir / "config.json").write_text(json.dumps({"base_run": str(base.run_dir)}))
    outcome, reason, result = evaluated(spec)
    assert outcome == "ok" and result.ok, reason
    elsewhere = hostile / "notes" / "base"
    shutil.copytree(base.run_dir, elsewhere)
    (spec.run_dir / "config.json").write_text(json.dumps({"base_run": str(elsewhere)}))
    outcome, reason, _ = evaluated(
        spec.model_copy(update={"overrides": {"base_run": str(elsewhere)}})
    )
    assert outcome == "sandbox_violation", reason


def vibe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VIBE), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_evaluate_and_sample_from_the_cli_are_sandboxed(
    hostile: Path, home: Path, tmp_path: Path
) -> None:
    """The entry hunts for the secret planted in the environment (OPENAI_API_KEY), HOME and the
    workspace, and tries to write in /tmp; it refuses to load if any of it works, as it does
    without the sandbox."""
    plant = Path("/tmp") / f"vibe-planted-{uuid.uuid4().hex}"
    targets = [home / ".ssh" / "id_ed25519", home / ".netrc", hostile / ".env", hostile / "notes"]
    spec = prepared_run(hostile, "hunts_secrets.py", "hunter")
    config = {"secret": SECRET, "targets": [str(t) for t in targets], "plant": str(plant)}
    (spec.run_dir / "config.json").write_text(json.dumps(config | {"plant": str(tmp_path / "p")}))
    unguarded = evaluate_unsandboxed(spec.entry_path, spec.run_dir, spec.cache_dir, samples=0)
    assert not unguarded.ok and "env OPENAI_API_KEY" in unguarded.reason
    assert str(home / ".netrc") in unguarded.reason and "wrote" in unguarded.reason
    (spec.run_dir / "config.json").write_text(json.dumps(config))
    run = str(spec.run_dir)
    entry = "experiments/hunts_secrets.py"
    done = vibe(
        "evaluate",
        run,
        "--entry",
        entry,
        "--samples",
        "1",
        "--max-tokens",
        "8",
        "--json",
        cwd=hostile,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    result = EvalResult.model_validate_json(done.stdout)
    assert result.ok and result.bpb is not None and len(result.samples) == 1
    done = vibe(
        "sample",
        run,
        "--entry",
        entry,
        "--prompt",
        "Once",
        "--max-tokens",
        "8",
        "--json",
        cwd=hostile,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["text"].startswith("Once")
    assert not plant.exists() and SECRET not in done.stdout + done.stderr


@pytest.mark.slow
def test_the_baseline_trainer_and_a_fusion_of_it_are_evaluated_in_the_sandbox(
    workspace: Path, home: Path
) -> None:
    """train.py (its KV-cache decoder used for the samples) and fusion.py, whose model process
    loads the base run through its folder, beside its own."""
    for name in ("train.py", "fusion.py", "ngram.py", "distill.py"):
        shutil.copy(TEMPLATES / name, workspace / "experiments" / name)
    tiny = {
        "tokenizer": "bytes",
        "n_layer": "1",
        "n_head": "2",
        "n_embd": "32",
        "context": "64",
        "batch_size": "8",
        "compile": "off",
        "dtype": "fp32",
        "threads": "1",
    }
    executor = LocalExecutor(SandboxPolicy())
    [base] = executor.execute([spec_for(workspace, "train.py", "gpt", 8, **tiny)])
    assert base.outcome == "ok", (base.reason, base.log_tail)
    sampling = base.evaluation.sampling
    spots = sum(min(SPOT_STEPS, sample.tokens) for sample in base.evaluation.samples)
    assert sampling.incremental and sampling.probe_rows > 0 and sampling.steps_checked == spots
    assert sampling.max_step_change < 1e-3 and base.evaluation.checks.windows_checked == 20
    fusion = {
        "base_run": str(base.spec.run_dir),
        "knn_memory_mb": "1",
        "fit_tokens": "2048",
        "ngram_order": "3",
    }
    [fused] = executor.execute([spec_for(workspace, "fusion.py", "fused", 120, **fusion)])
    assert fused.outcome == "ok", (fused.reason, fused.log_tail)
    assert fused.evaluation.ok and fused.evaluation.sampling.incremental
    assert fused.evaluation.sampling.max_step_change < 1e-3
