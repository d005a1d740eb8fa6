"""Executors run a list of RunSpecs and return one RunResult each, in order.

`Executor` is the whole interface a cluster executor implements: `execute(specs, on_event)`,
`tokenizer_of(spec)`, `score_sealed(spec, out_dir)` and `calibrate(spec)`; `make_executor` picks
the one [train] executor names.
`on_event(run_id, event)` receives every training event (start, step, eval, sample, done) and the
runner's `{"event": "status", "phase": ...}` events, from whichever thread sees them.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from vibe_research.lm.caches import caches_ready, prepare_caches, tokenizer_problem
from vibe_research.lm.corpus import DataSource
from vibe_research.lm.evaluate import EvalResult
from vibe_research.runs.calibrate import Calibration
from vibe_research.runs.events import OnEvent, OutputRecorder
from vibe_research.runs.result import Outcome, RunResult
from vibe_research.runs.runner import (
    RunFailed,
    calibrate,
    record,
    resolve_tokenizer,
    run_one,
    score_sealed,
)
from vibe_research.runs.settings import TrainSettings
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.policy import SandboxPolicy, load_policy
from vibe_research.sandbox.probe import ProtectionReport, probe

log = logging.getLogger(__name__)


class Executor(Protocol):
    def execute(self, specs: list[RunSpec], on_event: OnEvent | None = None) -> list[RunResult]:
        """Run every spec; after Ctrl-C the unfinished ones come back as `interrupted`."""
        ...

    def tokenizer_of(self, spec: RunSpec) -> str | None:
        """The token cache `spec` will read (see runs.runner.resolve_tokenizer), so the caller can
        build it before the run; raises runs.runner.RunFailed when the entry cannot say."""
        ...

    def score_sealed(self, spec: RunSpec, out_dir: Path) -> tuple[Outcome, str, EvalResult | None]:
        """The sealed test split scored for the finished run `spec` (see runs.runner.score_sealed)."""
        ...

    def calibrate(self, spec: RunSpec) -> Calibration | None:
        """The machine's speed now, measured as `spec`'s run would measure it before training
        (runs/calibrate.py); None where no one machine's speed can be known beforehand."""
        ...


def make_executor(settings: TrainSettings, sandbox_file: Path) -> Executor:
    """The executor [train] executor names, under the policy of `sandbox_file`."""
    policy = load_policy(sandbox_file)
    if settings.executor == "ray":
        from vibe_research.runs.ray_executor import RayExecutor

        return RayExecutor(policy, settings.ray)
    return LocalExecutor(policy)


def with_tokens(
    executor: Executor,
    specs: list[RunSpec],
    data: DataSource,
    root: Path,
    cache_dir: Path,
    say: Callable[[str], None],
) -> list[RunSpec]:
    """Each spec with the tokenizer its run reads, whose token caches are built first if missing.

    Asked once per distinct entry and overrides; a spec whose entry cannot say keeps no tokenizer,
    and its run records why. A tokenizer past what may be built (lm.caches.tokenizer_problem) is
    not built: the run then finds no cache and records that, since nothing is built outside the
    sandbox on an untrusted entry's word beyond that.
    """
    known: dict[tuple[str, tuple], str | None] = {}
    checked: set[str] = set()  # tokenizers already checked against the data in this call
    ready = []
    for spec in specs:
        key = (spec.entry, tuple(sorted(spec.overrides.items())))
        if key not in known:
            try:
                known[key] = executor.tokenizer_of(spec)
            except RunFailed as failed:
                log.debug("describe failed (%s); the run will record why", failed.reason)
                known[key] = None
            tokenizer = known[key]
            if tokenizer is not None and tokenizer not in checked:
                checked.add(tokenizer)
                _current_caches(tokenizer, spec.entry, data, root, cache_dir, say)
        ready.append(spec.model_copy(update={"tokenizer": known[key]}))
    return ready


def _current_caches(
    tokenizer: str,
    entry: str,
    data: DataSource,
    root: Path,
    cache_dir: Path,
    say: Callable[[str], None],
) -> None:
    """Build the caches of `tokenizer` where missing, rebuild them where [data] or the tokenizer's
    training text changed since they were made (so no run trains or is scored on stale tokens),
    and build nothing for a tokenizer past what may be built."""
    if problem := tokenizer_problem(tokenizer):
        say(f"not building token caches for {entry}: {problem}")
    elif not caches_ready(cache_dir, tokenizer):
        say(f"building the {tokenizer} token caches")
        prepare_caches(data, root, cache_dir, tokenizer)
    else:
        built = [
            split for split, fresh in prepare_caches(data, root, cache_dir, tokenizer) if fresh
        ]
        if built:
            names = ", ".join(split.manifest.split for split in built)
            say(f"rebuilt the {tokenizer} token caches ({names}): the data changed")


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

    def score_sealed(self, spec: RunSpec, out_dir: Path) -> tuple[Outcome, str, EvalResult | None]:
        return score_sealed(spec, self.policy, self.report, out_dir)

    def calibrate(self, spec: RunSpec) -> Calibration | None:
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        return calibrate(spec, self.policy, self.report)

    def execute(self, specs: list[RunSpec], on_event: OnEvent | None = None) -> list[RunResult]:
        results: list[RunResult] = []
        for spec in specs:
            if results and results[-1].outcome == "interrupted":
                results.append(not_started(spec, self.report))
                continue
            results.append(run_one(spec, self.policy, self.report, on_event))
        return results
