"""`vibe-research evaluate` and `sample`: measure a trained model as the runner does, the scorer
and the model process each in its own sandbox (runs/measure.py)."""

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from vibe_research.lm.errors import UserError

if TYPE_CHECKING:
    from vibe_research.lm.evaluate import EvalResult

log = logging.getLogger(__name__)

EXIT_REJECTED = 3
EXIT_INTERRUPTED = 130
MODEL_LINES_SHOWN = 20  # of the model process's output, on stderr when the scorer fails
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

    arguments = ["--samples", str(samples), "--max-tokens", str(max_tokens)]
    if valid is not None:
        arguments += ["--valid", str(valid.resolve())]
    _, output = _run("vibe_research.lm.evaluate", run_dir, entry, arguments, valid)
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
    code, output = _run("vibe_research.lm.generate", run_dir, entry, arguments)
    if code == EXIT_REJECTED:
        print(f"model rejected: {output}", file=sys.stderr)
        raise typer.Exit(EXIT_REJECTED)
    result = Sample.model_validate_json(output)
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


def _run(
    module: str, run_dir: Path, entry: Path | None, arguments: list[str], valid: Path | None = None
) -> tuple[int, str]:
    """Run the scorer `python -m module` against the model of `run_dir`, both sandboxed under the
    workspace's sandbox.toml: (0, its stdout), or (3, its stdout or, without one, the reason);
    UserError otherwise."""
    from vibe_research.lm.entry import check_paths
    from vibe_research.research.settings import load_settings
    from vibe_research.research.workspace import find_workspace
    from vibe_research.runs.measure import Measurement, run_measurement
    from vibe_research.runs.runner import referenced_runs
    from vibe_research.sandbox.policy import load_policy
    from vibe_research.sandbox.probe import probe

    workspace = find_workspace()
    if entry is None:
        entry = workspace.root / load_settings(workspace.settings_file).train.entry
    entry, run_dir = entry.resolve(), run_dir.resolve()
    check_paths(entry, run_dir)
    policy = load_policy(workspace.sandbox_file)
    cache_dir = workspace.cache.resolve()
    stdout: list[str] = []
    stderr: list[str] = []
    model_output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vibe-measure-") as scratch:
        measurement = Measurement(
            workspace=workspace.root,
            entry=entry,
            run_dir=run_dir,
            cache_dir=cache_dir,
            scratch=Path(scratch),
            out_dir=Path(scratch),
            references=referenced_runs(run_dir, workspace.root, _settings_of(run_dir)),
            scorer_reads=[valid.resolve()] if valid is not None else [],
        )
        end = run_measurement(
            measurement,
            module,
            [
                "--entry",
                str(entry),
                "--run-dir",
                str(run_dir),
                "--cache-dir",
                str(cache_dir),
                *arguments,
                "--timeout",
                f"{policy.eval_timeout_s:g}",
            ],
            policy,
            probe(policy),
            f"cli-{os.getpid()}",
            policy.eval_timeout_s,
            stdout.append,
            stderr.append,
            model_output.append,
        )
    if end.scorer.stopped == "interrupt":
        raise typer.Exit(EXIT_INTERRUPTED)
    code = end.scorer.exit_code
    lines = "".join(stderr).strip().splitlines()
    if code in (0, EXIT_REJECTED) and "".join(stdout).strip():
        return code, "".join(stdout)
    if code == EXIT_REJECTED:
        return code, lines[-1].removeprefix("model rejected: ") if lines else "no reason given"
    for line in model_output[-MODEL_LINES_SHOWN:]:
        log.info("model process: %s", line.rstrip())
    raise UserError((lines or [f"exit code {code}"])[-1].removeprefix("error: "))


def _settings_of(run_dir: Path) -> list[object]:
    """The values of the run's resolved config (config.json), where a base run would be named."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return list(config.values()) if isinstance(config, dict) else []


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
    checks = result.checks
    table.add_row(
        "checks",
        f"{checks.rows_normalised:,} rows normalised (max error {checks.max_normalisation_error:.1e}); "
        f"{checks.windows_checked} windows, {checks.rows_checked:,} rows asked again: causal "
        f"(max change {checks.max_causal_change:.1e} nats)",
    )
    if result.sampling is not None:
        sampling = result.sampling
        table.add_row(
            "sampling",
            f"{'incremental' if sampling.incremental else 'full windows'}; "
            f"{sampling.steps_checked} steps checked (max total variation {sampling.max_step_change:.1e})",
        )
    table.add_row(
        "time",
        f"load {result.load_s:.1f} s, score {result.score_s:.1f} s, checks {result.check_s:.1f} s, "
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
