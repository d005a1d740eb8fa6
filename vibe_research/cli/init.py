"""`vibe-research init`."""

import json
from pathlib import Path

import typer
from rich.console import Console


def init(
    folder: Path = typer.Argument(Path("."), help="Folder for the workspace (created if missing)."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Folder with train*.txt and valid.txt to use as the data source.",
        envvar="VIBE_DATA",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create a research workspace: notes/, experiments/, sandbox.toml, vibe-research.toml, git."""
    from vibe_research.research.scaffold import init_workspace

    workspace = init_workspace(folder, data)
    if as_json:
        print(json.dumps({"workspace": str(workspace.root)}))
        return
    console = Console()
    console.print(f"[green]Created[/] research workspace in [bold]{workspace.root}[/]")
    console.print(f"Next: [bold]cd {folder}[/] and [bold]vibe-research continue[/]")


def register(app: typer.Typer) -> None:
    app.command()(init)
