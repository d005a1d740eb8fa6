"""`vibe-research continue`: run the research loop, interactively or unattended."""

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from vibe_research.lm.errors import UserError

if TYPE_CHECKING:
    from vibe_research.settings import Settings
    from vibe_research.workspace import Workspace

NO_TERMINAL = "no terminal to show the menu on: pass --auto N (N turns, each taking the top suggestion), --pick N or --idea TEXT"


class ConsoleUI:
    """Lines on stderr, live progress bars around runs (rich)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    @contextmanager
    def progress(self, specs: list) -> Iterator:
        from vibe_research.runs.progress import RunProgress

        with RunProgress(specs, console=self.console) as progress:
            yield progress


def _preflight(
    console: Console, workspace: "Workspace", settings: "Settings", manual: bool
) -> None:
    """One line per check that is not plainly ok; stop on a failure the loop cannot mend itself."""
    from vibe_research.research.preflight import run_checks

    checks, _ = run_checks(workspace, settings)
    for check in checks:
        if (check.level == "ok" and check.name != "device") or check.name.startswith("tokens"):
            continue  # missing token caches are built next, with their own lines
        colour = {"ok": "dim", "warn": "yellow", "fail": "red"}[check.level]
        fix = f" ({check.fix})" if check.fix else ""
        console.print(f"[{colour}]{check.name}[/]: {escape(check.detail + fix)}", highlight=False)
    # Token caches are built on demand, and --manual is for a dirty experiments/.
    mendable = {"git"} if manual else set()
    blocking = [
        c
        for c in checks
        if c.level == "fail" and not c.name.startswith("tokens") and c.name not in mendable
    ]
    if blocking:
        first = blocking[0]
        raise UserError(f"{first.name}: {first.detail}" + (f"; {first.fix}" if first.fix else ""))


def _loop(
    console: Console,
    pick: int | None,
    idea: str | None,
    auto: int | None,
    manual: str | None,
    interactive: bool,
) -> None:
    from vibe_research.research import gitops
    from vibe_research.research import loop as research_loop
    from vibe_research.research.session import Session
    from vibe_research.research.session import manual as record_manual
    from vibe_research.settings import load_settings
    from vibe_research.workspace import find_workspace

    workspace = find_workspace()
    settings = load_settings(workspace.settings_file)
    with research_loop.exclusive(workspace):
        _preflight(console, workspace, settings, manual is not None)
        ui = ConsoleUI(console)
        env = research_loop.build_env(workspace, settings, ui)
        research_loop.recover(env)
        if manual is not None:
            record_manual(env, manual)
        else:
            gitops.check_ready(workspace.root)
        session = Session(env, console, interactive)
        session.start(pick=pick, idea=idea, auto=auto)


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
    try:
        _loop(console, pick, idea, auto, manual, interactive)
    except KeyboardInterrupt:
        console.print(
            "[yellow]stopped by Ctrl-C[/]: what finished is recorded; `vibe-research continue` resumes the rest"
        )
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    app.command(name="continue")(continue_)
