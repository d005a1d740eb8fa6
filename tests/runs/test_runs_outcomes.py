"""Each way a run can end, produced by a real process and recorded with the right outcome."""

from pathlib import Path

from toy import spec_for

from vibe_research.runs.events import OutputRecorder
from vibe_research.runs.executor import LocalExecutor
from vibe_research.runs.result import RunResult
from vibe_research.sandbox.policy import SandboxPolicy


def run(
    workspace: Path,
    entry: str,
    policy: SandboxPolicy | None = None,
    budget_s: float = 20,
    **overrides: str,
) -> RunResult:
    spec = spec_for(
        workspace, entry, f"run-{len(list(workspace.glob('.vibe/runs/*')))}", budget_s, **overrides
    )
    return LocalExecutor(policy or SandboxPolicy()).execute([spec])[0]


def test_nan_loss(workspace: Path, home: Path) -> None:
    result = run(workspace, "toy_train.py", nan_at="2")
    assert result.outcome == "nan" and result.summary.loss_curve[1][2] is None


def test_crash_keeps_the_error_line(workspace: Path, home: Path) -> None:
    result = run(workspace, "toy_train.py", steps="0")
    assert (
        result.outcome == "crash"
        and "ValueError" in result.reason
        and "Traceback" in result.log_tail
    )


def test_past_budget_is_a_timeout(workspace: Path, home: Path) -> None:
    result = run(
        workspace,
        "toy_train.py",
        SandboxPolicy(grace_s=0.5),
        budget_s=4,
        steps="50",
        step_sleep_s="1",
    )
    assert result.outcome == "timeout" and "SIGTERM" in result.reason and result.evaluation is None
    assert result.summary.steps >= 1


def test_unknown_override_fails_in_describe(workspace: Path, home: Path) -> None:
    result = run(workspace, "toy_train.py", nope="1")
    assert (
        result.outcome == "crash"
        and "--describe failed" in result.reason
        and "unknown key" in result.reason
    )
    assert (result.spec.run_dir / "result.json").is_file()


def test_a_model_that_peeks_is_a_bad_model(workspace: Path, home: Path) -> None:
    result = run(workspace, "toy_peek.py", steps="2")
    assert result.outcome == "bad_model" and "not causal" in result.reason
    assert result.evaluation is not None and not result.evaluation.ok


def test_recorder_separates_events_from_log() -> None:
    seen: list[dict] = []
    recorder = OutputRecorder("r", lambda run_id, event: seen.append(event))
    recorder.stdout_line('{"event": "start", "device": "cpu", "dtype": "fp32", "params": 10}\n')
    recorder.stdout_line("plain text\n")
    recorder.stdout_line(
        '{"event": "step", "step": 3, "loss": NaN, "tokens": 30, "tokens_per_s": 15.0, "elapsed_s": 2}\n'
    )
    recorder.stdout_line('{"not": "an event"}\n')
    recorder.stdout_line('{"event": "done", "steps": 3, "tokens": 30, "elapsed_s": 2.5}\n')
    assert [event["event"] for event in seen] == ["start", "step", "done"]
    assert recorder.log_text() == 'plain text\n{"not": "an event"}\n'
    summary = recorder.summary
    assert (
        summary.device,
        summary.params,
        summary.steps,
        summary.tokens,
        summary.tokens_per_s,
    ) == ("cpu", 10, 3, 30, 15.0)
    assert recorder.nan_seen and summary.loss_curve == [(2.0, 3, None)] and summary.done
