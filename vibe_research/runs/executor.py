"""Executors run a list of RunSpecs and return one RunResult each, in order.

`Executor` is the whole interface a cluster executor implements: `execute(specs, on_event)`.
`on_event(run_id, event)` receives every training event (start, step, eval, sample, done) and the
runner's `{"event": "status", "phase": ...}` events, from whichever thread sees them.
"""

from datetime import UTC, datetime
from typing import Protocol

from vibe_research.runs.events import OnEvent, OutputRecorder
from vibe_research.runs.result import RunResult
from vibe_research.runs.runner import record, run_one
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.policy import SandboxPolicy
from vibe_research.sandbox.probe import ProtectionReport, probe


class Executor(Protocol):
    def execute(self, specs: list[RunSpec], on_event: OnEvent | None = None) -> list[RunResult]:
        """Run every spec; after Ctrl-C the unfinished ones come back as `interrupted`."""
        ...


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

    def execute(self, specs: list[RunSpec], on_event: OnEvent | None = None) -> list[RunResult]:
        results: list[RunResult] = []
        for spec in specs:
            if results and results[-1].outcome == "interrupted":
                results.append(not_started(spec, self.report))
                continue
            results.append(run_one(spec, self.policy, self.report, on_event))
        return results
