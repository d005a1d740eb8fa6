"""The runner end to end on a toy experiment: describe, train in the sandbox, evaluate, record."""

import json
from pathlib import Path

from toy import spec_for

from vibe_research.runs.executor import LocalExecutor
from vibe_research.runs.result import RunResult
from vibe_research.sandbox.policy import SandboxPolicy


def test_toy_run_trains_evaluates_and_records(workspace: Path, home: Path) -> None:
    events: list[tuple[str, dict]] = []
    spec = spec_for(workspace, "toy_train.py", "toy-1", steps="4")
    [result] = LocalExecutor(SandboxPolicy()).execute(
        [spec], lambda run_id, event: events.append((run_id, event))
    )
    assert result.outcome == "ok", (result.reason, result.log_tail)
    assert result.spec.tokenizer == "bytes"
    assert result.summary.steps == 4 and result.summary.done and len(result.summary.loss_curve) == 4
    assert result.evaluation is not None and result.evaluation.ok and 0 < result.evaluation.bpb < 8
    assert result.sandbox.active("landlock-files")
    stored = RunResult.model_validate_json((spec.run_dir / "result.json").read_text())
    assert stored.evaluation.bpb == result.evaluation.bpb
    kinds = [event["event"] for _, event in events]
    assert kinds[:2] == ["status", "status"] and "step" in kinds and kinds[-1] == "status"
    assert [
        json.loads(line)["event"]
        for line in (spec.run_dir / "events.jsonl").read_text().splitlines()
    ] == ["start", "step", "step", "step", "step", "done"]
    assert not (spec.run_dir / "tmp").exists()


def test_a_run_asked_to_stop_after_its_first_steps_saves_and_is_evaluated(
    workspace: Path, home: Path
) -> None:
    """The smoke run's way of ending: SIGTERM once it reports a step; the entry saves and exits 0."""
    spec = spec_for(workspace, "toy_train.py", "toy-stop", steps="400", step_sleep_s="0.05")
    spec = spec.model_copy(update={"stop_after_steps": 2, "stop_after_s": 15})
    [result] = LocalExecutor(SandboxPolicy()).execute([spec])
    assert result.outcome == "ok" and result.reason == "stopped early as asked, and saved", (
        result.log_tail
    )
    assert result.summary.steps is not None and 2 <= result.summary.steps < 50
    assert result.summary.loss_curve[-1][0] < 15  # the training's own clock: stopped by steps
    assert result.evaluation is not None and result.evaluation.ok


def test_a_run_asked_to_stop_at_a_time_cap_stops_there(workspace: Path, home: Path) -> None:
    spec = spec_for(workspace, "toy_train.py", "toy-cap", steps="400", step_sleep_s="0.05")
    spec = spec.model_copy(update={"stop_after_s": 3})
    [result] = LocalExecutor(SandboxPolicy()).execute([spec])
    assert result.outcome == "ok" and result.reason == "stopped early as asked, and saved", (
        result.log_tail
    )
    assert result.summary.steps is not None and result.summary.steps < 400
    assert result.evaluation is not None and result.evaluation.ok


def test_a_run_may_read_the_run_folder_its_overrides_name_and_nothing_else(
    workspace: Path, home: Path
) -> None:
    """Fusion reads its base run's model: that folder is granted read-only, a folder outside the runs is not."""
    executor = LocalExecutor(SandboxPolicy())
    [base] = executor.execute([spec_for(workspace, "toy_train.py", "toy-base", steps="2")])
    assert base.outcome == "ok", base.log_tail
    [fused] = executor.execute(
        [
            spec_for(
                workspace, "toy_train.py", "toy-fused", steps="2", base_run=str(base.spec.run_dir)
            )
        ]
    )
    assert fused.outcome == "ok", fused.log_tail
    assert fused.evaluation is not None and fused.evaluation.ok
    outside = workspace / "notes"
    outside.mkdir(exist_ok=True)
    (outside / "bigram.npz").write_bytes((base.spec.run_dir / "bigram.npz").read_bytes())
    [refused] = executor.execute(
        [spec_for(workspace, "toy_train.py", "toy-refused", steps="2", base_run=str(outside))]
    )
    assert refused.outcome == "sandbox_violation", (refused.reason, refused.log_tail)


def test_a_run_without_a_tokenizer_of_its_own_reads_the_tokens_of_the_run_it_builds_on(
    workspace: Path, home: Path
) -> None:
    executor = LocalExecutor(SandboxPolicy())
    [base] = executor.execute([spec_for(workspace, "toy_train.py", "toy-base", steps="2")])
    spec = spec_for(workspace, "toy_fuse.py", "toy-fuse", base_run=str(base.spec.run_dir))
    [fused] = executor.execute([spec.model_copy(update={"evaluate": False})])
    assert fused.outcome == "ok", (fused.reason, fused.log_tail)
    assert fused.spec.tokenizer == "bytes" and fused.summary.tokens and fused.summary.tokens > 0
