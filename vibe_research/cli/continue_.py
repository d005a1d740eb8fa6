"""`vibe-research continue`: run the research loop, interactively or unattended."""

import signal
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from vibe_research.lm.errors import UserError

if TYPE_CHECKING:
    from vibe_research.research.settings import Settings
    from vibe_research.research.workspace import Workspace

NO_TERMINAL = (
    "no terminal to show the menu on: pass --auto N (N turns, each taking the top suggestion), "
    "--pick N or --idea TEXT"
)


def _preflight(
    console: Console, workspace: "Workspace", settings: "Settings", manual: bool
) -> None:
    """One line per check that is not plainly ok; stop on a failure the loop cannot mend itself."""
    from vibe_research.cli.doctor import run_checks

    checks, _ = run_checks(workspace, settings)
    for check in checks:
        if (check.level == "ok" and check.name not in ("device", "git")) or check.name.startswith(
            "tokens"
        ):
            continue  # missing token caches are built next, with their own lines
        if check.name == "git" and check.level == "ok" and "left alone" not in check.detail:
            continue
        colour = {"ok": "dim", "warn": "yellow", "fail": "red"}[check.level]
        fix = f" ({check.fix})" if check.fix else ""
        console.print(f"[{colour}]{check.name}[/]: {escape(check.detail + fix)}", highlight=False)
    # Token caches are built on demand, and --manual is for a changed experiments/.
    mendable = {"experiments"} if manual else set()
    blocking = [
        c
        for c in checks
        if c.level == "fail" and not c.name.startswith("tokens") and c.name not in mendable
    ]
    if blocking:
        first = blocking[0]
        raise UserError(f"{first.name}: {first.detail}" + (f"; {first.fix}" if first.fix else ""))


def _session(
    console: Console,
    flags: dict,
    interactive: bool,
    budget: float | None,
    runs: int | None,
    limits: dict,
) -> None:
    from vibe_research.cli.console import ConsoleUI
    from vibe_research.research.loop.env import make_env
    from vibe_research.research.loop.recovery import exclusive, recover
    from vibe_research.research.loop.session import Session
    from vibe_research.research.settings import load_settings
    from vibe_research.research.workspace import find_workspace

    workspace = find_workspace()
    settings = load_settings(workspace.settings_file)
    train = {"budget_s": budget, "runs_per_proposal": runs}
    settings = settings.model_copy(
        update={
            "train": settings.train.model_copy(update={k: v for k, v in train.items() if v}),
            "session": settings.session.model_copy(
                update={k: v for k, v in limits.items() if v is not None}
            ),
        }
    )
    with exclusive(workspace):
        _preflight(console, workspace, settings, flags["manual"] is not None)
        ui = ConsoleUI(console)
        env = make_env(workspace, settings, ui)
        recover(env)
        Session(env, ui, interactive, settings.session).start(**flags)


def continue_(
    pick: int | None = typer.Option(
        None, "--pick", min=1, help="Take suggestion N of the last turn, run one turn, stop."
    ),
    idea: str | None = typer.Option(
        None, "--idea", help="Run one turn on your own idea (free text), stop."
    ),
    auto: int | None = typer.Option(
        None, "--auto", min=1, help="Run N turns unattended, each taking the top suggestion."
    ),
    manual: str | None = typer.Option(
        None,
        "--manual",
        help="Record your uncommitted experiments/ changes as an experiment titled TEXT, and run it.",
    ),
    budget: float | None = typer.Option(
        None,
        "--budget",
        min=1,
        help="Seconds per training run, this session only (default: [train] budget_s).",
    ),
    runs: int | None = typer.Option(
        None,
        "--runs",
        min=1,
        max=8,
        help="Seeds per proposal, this session only (default: [train] runs_per_proposal).",
    ),
    max_hours: float | None = typer.Option(
        None,
        "--max-hours",
        min=0.001,
        help="Start no turn after this many hours (default: [session] max_hours).",
    ),
    patience: int | None = typer.Option(
        None,
        "--patience",
        min=1,
        help="Stop after this many turns in a row without a new best (default: [session] patience).",
    ),
) -> None:
    """Continue the research: propose a change, run it, judge it, record it, offer next steps."""
    console = Console(stderr=True)
    chosen = [
        flag
        for flag, value in (("--pick", pick), ("--idea", idea), ("--auto", auto))
        if value is not None
    ]
    if len(chosen) > 1:
        raise UserError(f"{' and '.join(chosen)} exclude each other: pass one")
    interactive = not chosen and sys.stdin.isatty()
    if not chosen and manual is None and not interactive:
        raise UserError(NO_TERMINAL)
    # `kill` and a closing terminal stop the loop as cleanly as Ctrl-C: runs are killed and recorded.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.default_int_handler)
    flags = {"pick": pick, "idea": idea, "auto": auto, "manual": manual}
    limits = {"max_hours": max_hours, "patience": patience}
    try:
        _session(console, flags, interactive, budget, runs, limits)
    except KeyboardInterrupt:
        console.print(
            "[yellow]stopped by Ctrl-C[/]: what finished is recorded; `vibe-research continue` resumes the rest"
        )
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    app.command(name="continue")(continue_)
