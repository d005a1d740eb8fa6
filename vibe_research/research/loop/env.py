"""What a turn works with, made once per `continue`, and how it talks to the person.

The loop never prints: it says short lines and shows progress through `TurnUI`, and asks the
researcher through `SessionUI`; the CLI implements both (cli/console.py), tests implement them
in a few lines.
"""

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Protocol

from vibe_research.llm.proposer import Proposer, make_proposer
from vibe_research.lm.caches import caches_ready, prepare_caches
from vibe_research.research.judge.cache import JudgeCache
from vibe_research.research.judge.scoring import Judge, make_judge
from vibe_research.research.settings import Settings
from vibe_research.research.state import ledger
from vibe_research.research.state.experiments import ExperimentState, ResearchState, rebuild_state
from vibe_research.research.state.ledger import Record, SuggestionsRecord
from vibe_research.research.workspace import Workspace
from vibe_research.runs.events import OnEvent
from vibe_research.runs.executor import Executor, make_executor
from vibe_research.runs.spec import RunSpec

log = logging.getLogger(__name__)


class TurnUI(Protocol):
    """How a turn talks to the person: short lines, and live progress around a batch of runs."""

    def say(self, text: str) -> None: ...

    def progress(self, specs: list[RunSpec]) -> AbstractContextManager[OnEvent]: ...


class SessionUI(TurnUI, Protocol):
    """What a session adds: the turn's results, the menu of next steps, and questions."""

    def show_turn(self, state: ResearchState, experiment: ExperimentState) -> None: ...

    def show_menu(self, suggestions: SuggestionsRecord | None) -> int:
        """Show the numbered next steps and the keys; how many steps there are."""
        ...

    def ask(self, prompt: str) -> str: ...


@dataclass
class Stopwatch:
    """Seconds per phase; `runs` (training and evaluation) is the turn's work, the rest overhead."""

    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=perf_counter)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + perf_counter() - start

    def overhead(self) -> dict[str, float]:
        return {name: round(s, 3) for name, s in self.seconds.items() if name != "runs"}

    def total(self) -> float:
        return perf_counter() - self.started


@dataclass
class Env:
    """Everything a turn needs, made once per `continue`."""

    workspace: Workspace
    settings: Settings
    executor: Executor
    proposer: Proposer
    judge: Judge
    judge_cache: JudgeCache
    ui: TurnUI
    watch: Stopwatch = field(default_factory=Stopwatch)

    @property
    def root(self) -> Path:
        return self.workspace.root

    def record(self, record: Record) -> None:
        ledger.append(self.workspace.ledger, record)

    def state(self) -> ResearchState:
        return rebuild_state(ledger.read(self.workspace.ledger).records)

    def seeds(self, count: int | None = None, after: list[int] | None = None) -> list[int]:
        """`count` seeds (default runs_per_proposal) from train.first_seed, skipping those in `after`."""
        wanted = count or self.settings.train.runs_per_proposal
        used = set(after or [])
        seeds, seed = [], self.settings.train.first_seed
        while len(seeds) < wanted:
            if seed not in used:
                seeds.append(seed)
            seed += 1
        return seeds


def make_env(workspace: Workspace, settings: Settings, ui: TurnUI) -> Env:
    """Proposer, judge and executor as the settings name them; the judge's token caches built."""
    from vibe_research.llm.client import LLMClient

    executor = make_executor(settings.train, workspace.sandbox_file)
    proposer = make_proposer(settings.llm, workspace.llm_log)
    client = LLMClient(settings.llm, workspace.llm_log) if proposer.name != "offline" else None
    if not caches_ready(workspace.cache, settings.data.tokenizer):
        ui.say(
            f"building the {settings.data.tokenizer} token caches the judge and the baseline need"
        )
        prepare_caches(settings.data, workspace.root, workspace.cache, settings.data.tokenizer)
    judge = make_judge(settings, workspace, client)
    return Env(
        workspace=workspace,
        settings=settings,
        executor=executor,
        proposer=proposer,
        judge=judge,
        judge_cache=JudgeCache(workspace.cache / "judge"),
        ui=ui,
    )
