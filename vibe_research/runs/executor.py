"""Executors run a list of RunSpecs and return one RunResult each, in order.

`Executor` is the whole interface a cluster executor implements: `execute(specs, on_event)` and
`tokenizer_of(spec)`; `make_executor` picks the one [train] executor names.
`on_event(run_id, event)` receives every training event (start, step, eval, sample, done) and the
runner's `{"event": "status", "phase": ...}` events, from whichever thread sees them.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from vibe_research.runs.events import OnEvent, OutputRecorder
from vibe_research.runs.result import RunResult
from vibe_research.runs.runner import record, resolve_tokenizer, run_one
from vibe_research.runs.settings import TrainSettings
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.policy import SandboxPolicy, load_policy
from vibe_research.sandbox.probe import ProtectionReport, probe


class Executor(Protocol):
    def execute(self, specs: list[RunSpec], on_event: OnEvent | None = None) -> list[RunResult]:
        """Run every spec; after Ctrl-C the unfinished ones come back as `interrupted`."""
        ...

    def tokenizer_of(self, spec: RunSpec) -> str | None:
        """The token cache `spec` will read (see runs.runner.resolve_tokenizer), so the caller can
        build it before the run; raises runs.runner.RunFailed when the entry cannot say."""
        ...


def make_executor(settings: TrainSettings, sandbox_file: Path) -> Executor:
    """The executor [train] executor names, under the policy of `sandbox_file`."""
    policy = load_policy(sandbox_file)
    if settings.executor == "ray":
        from vibe_research.runs.ray_executor import RayExecutor

        return RayExecutor(policy, settings.ray)
    return LocalExecutor(policy)


def not_started(spec: RunSpec, report: ProtectionReport) -> RunResult:
    """The record of a run that Ctrl-C stopped before it began."""
    return record(
        spec,
        "interrupted",
        "not started: stopped by Ctrl-C",
        datetime.now(UTC),
        report,
        OutputRecorder(spec.run_id),
    )


class LocalExecutor:
    """One run after another on this machine, each in the sandbox."""

    def __init__(self, policy: SandboxPolicy, report: ProtectionReport | None = None) -> None:
        self.policy = policy
        self.report = report or probe(policy)

    def tokenizer_of(self, spec: RunSpec) -> str | None:
        return resolve_tokenizer(spec, self.policy, self.report)

    def execute(self, specs: list[RunSpec], on_event: OnEvent | None = None) -> list[RunResult]:
        results: list[RunResult] = []
        for spec in specs:
            if results and results[-1].outcome == "interrupted":
                results.append(not_started(spec, self.report))
                continue
            results.append(run_one(spec, self.policy, self.report, on_event))
        return results
