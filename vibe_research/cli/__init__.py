"""The typer app: thin. Each command module in this package owns one noun and defines `register(app)`.

Domain errors (UserError) become one line on stderr and exit code 2 here, at the boundary;
with VIBE_DEBUG=1 they are re-raised with their traceback.
"""

import importlib
import logging
import os
import pkgutil
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from vibe_research import __version__
from vibe_research.lm.errors import UserError

app = typer.Typer(
    name="vibe-research",
    help="Agent-driven research on the strongest TinyStories language model that trains in five minutes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"vibe-research {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


# Each command module registers its noun; helper modules (progress bars, the console UI) have no
# `register` and are imported only by the commands that use them.
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _commands = importlib.import_module(f"{__name__}.{_module.name}")
    if hasattr(_commands, "register"):
        _commands.register(app)


def main() -> None:
    try:
        app()
    except UserError as exc:
        if os.environ.get("VIBE_DEBUG"):
            raise
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
