"""`vibe-research train`: K sandboxed trainings of an experiment, each then evaluated; a table."""

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from vibe_research.lm.errors import UserError

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130


def _overrides(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected key=value, for example --set n_layer=6")
        pairs[key] = value
    return pairs


def train(
    entry: str | None = typer.Option(
        None, "--entry", help="Experiment file, relative to the workspace (default: [train] entry)."
    ),
    budget: float | None = typer.Option(
        None,
        "--budget",
        min=1,
        help="Seconds per training (default: [train] budget_s).",
        envvar="VIBE_BUDGET",
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        help="Seed of the first run; the others follow (default: [train] first_seed).",
    ),
    runs: int = typer.Option(1, "--runs", min=1, max=16, help="How many runs, one seed each."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override one knob of the experiment: key=value (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run results as JSON."),
) -> None:
    """Train an experiment in the sandbox, evaluate every run, and show the results."""
    from vibe_research.cli.progress import RunProgress
    from vibe_research.research.settings import load_settings
    from vibe_research.research.workspace import find_workspace
    from vibe_research.runs.executor import make_executor, with_tokens
    from vibe_research.runs.spec import plan_runs

    workspace = find_workspace()
    settings = load_settings(workspace.settings_file)
    entry = entry or settings.train.entry
    if not (workspace.root / entry).is_file():
        raise UserError(
            f"{entry}: no such experiment file in {workspace.root}; pass --entry with a path relative to the workspace"
        )
    first = settings.train.first_seed if seed is None else seed
    overrides = _overrides(set_)
    specs = plan_runs(
        workspace.root,
        workspace.runs,
        workspace.cache.resolve(),
        entry,
        budget or settings.train.budget_s,
        [(seed, overrides) for seed in range(first, first + runs)],
        prefix="train",
        samples=settings.judge.samples_per_run,
    )
    executor = make_executor(settings.train, workspace.sandbox_file)
    # like `continue`: the token caches the entry reads are built first when missing
    specs = with_tokens(
        executor,
        specs,
        settings.data,
        workspace.root,
        workspace.cache.resolve(),
        lambda line: print(line, file=sys.stderr),
    )
    if as_json:
        results = executor.execute(specs)
        print(json.dumps([result.model_dump(mode="json") for result in results], indent=2))
    else:
        with RunProgress(specs) as on_event:
            results = executor.execute(specs, on_event)
        _print_table(results)
    if any(result.outcome == "interrupted" for result in results):
        raise typer.Exit(EXIT_INTERRUPTED)
    if any(result.outcome != "ok" for result in results):
        raise typer.Exit(EXIT_FAILED)


def _print_table(results: list) -> None:
    table = Table(title="runs")
    for column in (
        "run",
        "seed",
        "outcome",
        "steps",
        "tokens/s",
        "loss",
        "bpb",
        "seconds",
        "reason",
    ):
        table.add_column(
            column,
            justify="right"
            if column in ("seed", "steps", "tokens/s", "loss", "bpb", "seconds")
            else "left",
        )
    for result in results:
        summary, loss = result.summary, result.summary.last_loss
        table.add_row(
            result.run_id,
            str(result.spec.seed),
            ("[green]" if result.outcome == "ok" else "[red]") + result.outcome,
            str(summary.steps),
            f"{summary.tokens_per_s:,.0f}" if summary.tokens_per_s else "",
            f"{loss:.3f}" if loss is not None else "",
            f"{result.bpb:.4f}" if result.bpb is not None else "",
            f"{result.duration_s:.0f}",
            result.reason[:120],
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(train)
