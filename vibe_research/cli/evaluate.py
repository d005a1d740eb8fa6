"""`vibe-research evaluate` and `sample`: measure a trained model in its own process."""

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from vibe_research.lm.errors import UserError

if TYPE_CHECKING:
    from vibe_research.lm.evaluate import EvalResult

EXIT_REJECTED = 3
ENTRY_HELP = "Experiment file with load_model (default: entry in \\[train] of vibe-research.toml)."


def evaluate(
    run_dir: Path = typer.Argument(..., help="Run folder a training wrote."),
    entry: Path | None = typer.Option(None, "--entry", help=ENTRY_HELP),
    valid: Path | None = typer.Option(
        None, "--valid", help="Score this story file instead of the cached valid split."
    ),
    samples: int = typer.Option(8, "--samples", min=0, help="Fixed story beginnings to sample."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Tokens per sample at most."),
    as_json: bool = typer.Option(False, "--json", help="Print the EvalResult as JSON."),
) -> None:
    """Check the model's contract, then report validation bits per byte, perplexity and samples."""
    from vibe_research.lm.evaluate import EvalResult

    arguments = [
        "--run-dir",
        str(run_dir),
        "--samples",
        str(samples),
        "--max-tokens",
        str(max_tokens),
    ]
    if valid is not None:
        arguments += ["--valid", str(valid.resolve())]
    output = _run("vibe_research.lm.evaluate", entry, arguments)
    result = EvalResult.model_validate_json(output)
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        _print_result(result)
    if not result.ok:
        raise typer.Exit(EXIT_REJECTED)


def sample(
    run_dir: Path = typer.Argument(..., help="Run folder a training wrote."),
    prompt: str = typer.Option(..., "--prompt", help="Beginning of the story."),
    entry: Path | None = typer.Option(None, "--entry", help=ENTRY_HELP),
    temperature: float = typer.Option(
        1.0, "--temperature", min=0.0, help="0 picks the likeliest token."
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", min=1, help="Sample among the k likeliest tokens only."
    ),
    seed: int = typer.Option(1000, "--seed", help="Seed of the sampler."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Tokens to generate at most."),
    as_json: bool = typer.Option(False, "--json", help="Print the sample as JSON."),
) -> None:
    """Continue a story beginning with a trained model."""
    from vibe_research.lm.generate import Sample

    arguments = [
        "--run-dir",
        str(run_dir),
        "--prompt",
        prompt,
        "--temperature",
        str(temperature),
        "--seed",
        str(seed),
        "--max-tokens",
        str(max_tokens),
    ]
    if top_k is not None:
        arguments += ["--top-k", str(top_k)]
    result = Sample.model_validate_json(_run("vibe_research.lm.generate", entry, arguments))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    Console().print(
        Panel(
            f"[bold]{result.prompt}[/]{result.continuation}",
            title=f"seed {result.seed}",
            expand=False,
        )
    )


def _run(module: str, entry: Path | None, arguments: list[str]) -> str:
    """Run `python -m module` in its own process; its stdout on success, UserError otherwise."""
    from vibe_research.lm.paths import cache_root
    from vibe_research.research.settings import load_settings
    from vibe_research.research.workspace import find_workspace

    if entry is None:
        workspace = find_workspace()
        entry = workspace.root / load_settings(workspace.settings_file).train.entry
    command = [
        sys.executable,
        "-m",
        module,
        "--entry",
        str(entry.resolve()),
        "--cache-dir",
        str(cache_root()),
        *arguments,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode in (0, EXIT_REJECTED):
        return done.stdout
    lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
    raise UserError(lines[-1].removeprefix("error: ").removeprefix("model rejected: "))


def _print_result(result: "EvalResult") -> None:
    console = Console()
    if not result.ok:
        console.print(f"[bold red]model rejected:[/] {result.reason}")
        return
    table = Table(title=f"{result.run_dir}", title_justify="left", show_header=False)
    table.add_row("validation bits per byte", f"[bold]{result.bpb:.4f}[/]")
    table.add_row(f"perplexity per {result.tokenizer} token", f"{result.perplexity:.2f}")
    table.add_row(
        "scored", f"{result.tokens:,} tokens, {result.bytes:,} bytes, {result.stories:,} stories"
    )
    table.add_row("valid", result.valid or "")
    table.add_row(
        "checks",
        f"causal (max change {result.checks.max_causal_change:.1e} nats), "
        f"normalised (max error {result.checks.max_normalisation_error:.1e})",
    )
    table.add_row(
        "time",
        f"load {result.load_s:.1f} s, score {result.score_s:.1f} s, "
        f"sample {result.sample_s:.1f} s, total {result.wall_s:.1f} s",
    )
    console.print(table)
    for story in result.samples[:3]:
        console.print(
            Panel(
                f"[bold]{story.prompt}[/]{story.continuation}",
                title=f"seed {story.seed}",
                expand=False,
            )
        )


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
    app.command()(sample)
