"""`vibe-research report`: re-render the notes and figures from the ledger, or export them as one file."""

import json
from pathlib import Path

import typer
from rich.console import Console


def report(
    export: Path | None = typer.Option(
        None,
        "--export",
        help="Also write the whole notes as one markdown file, to paste into another model ('-': stdout).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Re-render notes/README.md, every experiment page and the figures from notes/ledger.jsonl."""
    from vibe_research.lm.atomic import write_text
    from vibe_research.research.notes.render import export_markdown, render_from_ledger
    from vibe_research.research.settings import load_settings
    from vibe_research.research.workspace import find_workspace

    workspace = find_workspace()
    settings = load_settings(workspace.settings_file)
    state, changed = render_from_ledger(
        workspace, settings.research.question, confidence=settings.research.confidence
    )
    if export == Path("-"):
        print(export_markdown(workspace, state), end="")
        return
    if export is not None:
        write_text(export, export_markdown(workspace, state))
    if as_json:
        print(
            json.dumps(
                {
                    "changed": [str(path) for path in changed],
                    "experiments": len(state.experiments),
                    "export": str(export) if export else None,
                }
            )
        )
        return
    console = Console()
    console.print(
        f"Rendered {len(state.experiments)} experiment(s) from {workspace.ledger.relative_to(workspace.root)}: "
        f"{len(changed)} file(s) changed."
    )
    if export is not None:
        console.print(f"Exported the notes to [bold]{export}[/].")


def register(app: typer.Typer) -> None:
    app.command()(report)
