"""The live display follows the events: phase, tokens/s, loss, and elapsed time of the budget."""

import io
import time
from pathlib import Path

from rich.console import Console

from vibe_research.cli.progress import TICK_S, RunProgress
from vibe_research.runs.spec import RunSpec


def _spec(tmp_path: Path) -> RunSpec:
    return RunSpec(
        run_id="r1",
        workspace=tmp_path,
        budget_s=30,
        run_dir=tmp_path / "r1",
        cache_dir=tmp_path / "cache",
    )


def test_progress_follows_run_events(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    with RunProgress([spec], console) as on_event:
        on_event("r1", {"event": "status", "phase": "train"})
        on_event("r1", {"event": "step", "step": 5, "loss": 3.25, "tokens_per_s": 12345.6})
        on_event("other", {"event": "step", "loss": 1.0})  # a run this display does not show
        time.sleep(3 * TICK_S)
        task = on_event.progress.tasks[0]
        assert (
            task.fields["phase"] == "train"
            and task.fields["speed"] == "12,346 tok/s"
            and task.fields["loss"] == "loss 3.250"
        )
        assert 0 < task.completed <= 30
        on_event("r1", {"event": "status", "phase": "finished", "outcome": "ok"})
        assert on_event.progress.tasks[0].fields["phase"] == "ok"
    assert "r1 seed 0" in console.file.getvalue()


def test_without_a_terminal_each_phase_is_one_plain_line(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    console = Console(file=io.StringIO(), force_terminal=False, width=160)
    with RunProgress([spec], console) as on_event:
        on_event("r1", {"event": "status", "phase": "train"})
        on_event("r1", {"event": "step", "step": 5, "loss": 3.25, "tokens_per_s": 12345.6})
        on_event("r1", {"event": "status", "phase": "evaluate"})
        on_event("r1", {"event": "status", "phase": "finished", "outcome": "ok"})
    lines = console.file.getvalue().splitlines()
    assert lines[:3] == [
        "r1: train",
        "r1: evaluate (12,346 tok/s, loss 3.250)",
        "r1: ok (12,346 tok/s, loss 3.250)",
    ]
