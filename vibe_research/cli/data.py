"""`vibe-research data prepare` and `data show`: token caches of the workspace's stories."""

import json
import time
from collections.abc import Callable

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(help="Stories, tokenizers and token caches.", no_args_is_help=True)


@data_app.command()
def prepare(
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="gpt2, bytes or bpe:N (default: tokenizer in \\[data] of vibe-research.toml).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
) -> None:
    """Tokenize the train and valid splits into the cache (training the BPE first if needed)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from vibe_research.lm.caches import prepare_caches
    from vibe_research.lm.tokenizer import check_spec
    from vibe_research.research.settings import load_settings
    from vibe_research.research.workspace import find_workspace

    start = time.perf_counter()
    workspace = find_workspace()
    settings = load_settings(workspace.settings_file)
    spec = check_spec(tokenizer or settings.data.tokenizer)
    cache = workspace.cache
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        waiting = progress.add_task(f"tokenizer {spec}", total=None)

        def bar(description: str, total: int) -> Callable[[int], None]:
            progress.update(waiting, visible=False)
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)

        done = prepare_caches(settings.data, workspace.root, workspace.cache, spec, bar)
    rows = [
        {
            **split.manifest.model_dump(),
            "path": str(split.path),
            "built": built,
            "bytes_per_token": split.manifest.bytes_per_token,
        }
        for split, built in done
    ]
    seconds = time.perf_counter() - start
    if as_json:
        print(
            json.dumps(
                {"tokenizer": spec, "cache": str(cache), "seconds": seconds, "splits": rows},
                indent=2,
            )
        )
        return
    _print_splits(rows, f"{spec} token caches in {cache} ({seconds:.1f} s)")


@data_app.command()
def show(
    as_json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
) -> None:
    """List the token caches that exist, with their sources and counts."""
    from vibe_research.lm.paths import cache_root
    from vibe_research.lm.tokens import read_manifest

    cache = cache_root()
    rows = []
    for folder in sorted(path.parent for path in (cache / "tokens").glob("*/*/manifest.json")):
        manifest = read_manifest(folder)
        if manifest is not None:  # stale or broken caches are rebuilt by `data prepare`, not listed
            rows.append(
                {
                    **manifest.model_dump(),
                    "path": str(folder),
                    "built": None,
                    "bytes_per_token": manifest.bytes_per_token,
                }
            )
    if as_json:
        print(json.dumps({"cache": str(cache), "splits": rows}, indent=2))
        return
    if not rows:
        Console(stderr=True).print(
            f"no token caches in {cache}: run [bold]vibe-research data prepare[/]"
        )
        return
    _print_splits(rows, f"token caches in {cache}")


def _print_splits(rows: list[dict], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("split", "tokenizer", "stories", "tokens", "bytes", "bytes/token", ""):
        table.add_column(
            column,
            justify="right" if column in {"stories", "tokens", "bytes", "bytes/token"} else "left",
        )
    for row in rows:
        status = {True: "built", False: "reused", None: ""}[row["built"]]
        table.add_row(
            row["split"],
            row["tokenizer"],
            f"{row['stories']:,}",
            f"{row['tokens']:,}",
            f"{row['bytes']:,}",
            f"{row['bytes_per_token']:.3f}",
            status,
        )
    console = Console()
    console.print(table)
    for row in rows:
        line = f"{row['split']} {row['tokenizer']}: {row['source_kind']} {row['source']}"
        console.print(line, highlight=False, soft_wrap=True)
    if any(row["source_kind"] == "synthetic" for row in rows):
        Console(stderr=True).print(
            "[bold yellow]warning:[/] synthetic stories: these are NOT TinyStories numbers"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
