"""Live progress with rich: one bar per run (elapsed of budget), its phase, tokens/s and loss."""

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from vibe_research.runs.spec import RunSpec

TICK_S = 0.5


class RunProgress:
    """`with RunProgress(specs) as on_event: executor.execute(specs, on_event)`."""

    def __init__(self, specs: list[RunSpec], console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:>5.0f}/{task.total:.0f} s"),
            TextColumn("{task.fields[phase]:<9}"),
            TextColumn("{task.fields[speed]:>12}"),
            TextColumn("{task.fields[loss]:>11}"),
            console=console,
            # without a terminal the bars would be printed once, at the end: _log_line says it instead
            disable=not console.is_terminal,
        )
        self.budgets = {spec.run_id: spec.budget_s for spec in specs}
        self.tasks: dict[str, TaskID] = {
            spec.run_id: self.progress.add_task(
                f"{spec.run_id} seed {spec.seed}",
                total=spec.budget_s,
                phase="waiting",
                speed="",
                loss="",
            )
            for spec in specs
        }
        self.started: dict[str, float] = {}
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> "RunProgress":
        self.progress.start()
        self._ticker.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._ticker.join()
        self.progress.stop()

    def __call__(self, run_id: str, event: dict) -> None:
        """The executor's on_event callback; called from reader threads."""
        task = self.tasks.get(run_id)
        if task is None:
            return
        kind = event.get("event")
        if kind == "status":
            phase = event.get("outcome") or event.get("phase", "")
            if event.get("phase") == "train":
                self.started[run_id] = time.monotonic()
            elif event.get("phase") in ("evaluate", "finished"):
                self.started.pop(run_id, None)  # the bar is the training's clock
            self.progress.update(task, phase=phase)
            if not self.progress.console.is_terminal:
                self._log_line(run_id, task, phase)
        elif kind == "step":
            fields: dict[str, str] = {}
            if isinstance(event.get("tokens_per_s"), int | float):
                fields["speed"] = f"{event['tokens_per_s']:,.0f} tok/s"
            if isinstance(event.get("loss"), int | float):
                fields["loss"] = f"loss {event['loss']:.3f}"
            self.progress.update(task, **fields)

    def _log_line(self, run_id: str, task: TaskID, phase: str) -> None:
        """Without a terminal (a log file, CI) no bar is drawn: one line per phase says where each run is."""
        fields = self.progress.tasks[task].fields
        facts = ", ".join(
            fact for fact in (fields.get("speed", ""), fields.get("loss", "")) if fact
        )
        self.progress.console.print(
            f"{run_id}: {phase}" + (f" ({facts})" if facts else ""), highlight=False
        )

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            for run_id, began in list(self.started.items()):
                self.progress.update(
                    self.tasks[run_id],
                    completed=min(time.monotonic() - began, self.budgets[run_id]),
                )
