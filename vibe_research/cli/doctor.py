"""`vibe-research doctor`: what this machine and workspace can do, and what to fix."""

import json

import typer
from rich.console import Console
from rich.table import Table

STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """Check device, data, tokenizer caches, LLM endpoint, sandbox protections and git state."""
    from vibe_research.research.preflight import run_checks
    from vibe_research.settings import load_settings
    from vibe_research.workspace import find_workspace

    workspace = find_workspace()
    settings = load_settings(workspace.settings_file)
    checks, sandbox_report = run_checks(workspace, settings)
    if as_json:
        print(
            json.dumps(
                {
                    "workspace": str(workspace.root),
                    "checks": [c.model_dump() for c in checks],
                    "sandbox": sandbox_report,
                },
                indent=2,
            )
        )
    else:
        table = Table(title=f"vibe-research doctor: {workspace.root}", title_justify="left")
        for column in ("check", "", "detail", "to do"):
            table.add_column(column, overflow="fold")
        for check in checks:
            table.add_row(check.name, STYLE[check.level], check.detail, check.fix)
        Console().print(table)
    if any(check.level == "fail" for check in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
