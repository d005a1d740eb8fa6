"""`vibe-research ledger repair`: a damaged ledger made readable again, every record kept."""

import typer
from rich.console import Console

ledger_app = typer.Typer(help="The machine record notes/ledger.jsonl.", no_args_is_help=True)


@ledger_app.command()
def repair() -> None:
    """Keep every valid record and move each line that is not one to .vibe/ (nothing is lost)."""
    from vibe_research.research.state.ledger import repair as repair_ledger
    from vibe_research.research.workspace import find_workspace

    workspace = find_workspace()
    done = repair_ledger(workspace.ledger, workspace.state)
    console = Console(stderr=True)
    if not done.set_aside:
        console.print(f"{workspace.ledger}: all {done.kept} records are valid; nothing to repair")
        return
    lines = ", ".join(map(str, done.set_aside))
    console.print(
        f"{workspace.ledger}: kept {done.kept} records; line(s) {lines} moved to {done.side_file}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
