"""`vibe-research status`: the leaderboard and where the research stands."""

import json
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vibe_research.research.stats import Summary

if TYPE_CHECKING:
    from vibe_research.research.state.experiments import LeaderboardRow, ResearchState
    from vibe_research.research.state.ledger import LedgerRead

COLUMNS = ("#", "experiment", "bpb", "judge", "win rate", "seeds", "verdict", "commit")


def _interval(summary: Summary | None, digits: int) -> str:
    """mean ± half the interval, as people write it."""
    if summary is None:
        return "–"
    if summary.low is None or summary.high is None:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {(summary.high - summary.low) / 2:.{digits}f}"


# columns given up, in this order, when the terminal is too narrow for the experiment to show
DROPPABLE = ("commit", "win rate", "judge", "seeds")
EXPERIMENT_WIDTH = 22  # the least the experiment column gets: its number and a readable title


def _table(rows: list["LeaderboardRow"], confidence: float, width: int) -> Table:
    """Numbers and short cells keep their full width; the experiment and its title wrap instead.
    In a narrow terminal the least needed columns go, so the experiment column never vanishes."""
    table = Table(
        title=f"Leaderboard (mean over seeds ± half the {confidence:.0%} t interval)",
        title_justify="left",
    )
    cells = []
    for row in rows:
        number = row.experiment.split("-", 1)[0]  # its page's name repeats the title
        name = f"[bold green]★ {number}[/]" if row.best else number
        decided = (
            "" if row.verdict in (None, "baseline") else ", kept" if row.kept else ", discarded"
        )
        title = escape(row.title + (f" (best: {row.setting})" if row.setting else ""))
        cells.append(
            [
                str(row.rank),
                f"{name} {title}",
                _interval(row.bpb, 4),
                _interval(row.judge, 2),
                f"{row.win_rate:.0%}" if row.win_rate is not None else "–",
                str(row.runs),
                (row.verdict or "undecided") + decided,
                row.commit[:8] if row.commit else "–",
            ]
        )
    widths = {
        header: max([len(header), *(len(cell[index]) for cell in cells)])
        for index, header in enumerate(COLUMNS)
        if header != "experiment"
    }
    shown = list(COLUMNS)
    # each column costs its width plus 3 for its border and padding
    for header in DROPPABLE:
        needed = EXPERIMENT_WIDTH + 4 + sum(widths[h] + 3 for h in shown if h != "experiment")
        if needed <= width:
            break
        shown.remove(header)
    for header in shown:
        if header == "experiment":
            table.add_column(
                header, justify="left", overflow="fold", min_width=EXPERIMENT_WIDTH, ratio=1
            )
        else:
            justify = "left" if header in ("verdict", "commit") else "right"
            table.add_column(header, justify=justify, no_wrap=True, min_width=widths[header])
    for cell in cells:
        table.add_row(
            *(value for header, value in zip(COLUMNS, cell, strict=True) if header in shown)
        )
    return table


def _unfinished(state: "ResearchState", ledger: "LedgerRead") -> list[str]:
    lines = []
    if state.open_experiment:
        lines.append(
            f"[yellow]Unfinished:[/] {state.open_experiment.id}; `vibe-research continue` resumes it."
        )
    if state.interrupted:
        lines.append(
            f"[yellow]Interrupted runs:[/] {', '.join(run.run for _, run in state.interrupted)}"
        )
    if ledger.torn_lines:
        lines.append(
            f"[yellow]Skipped a torn ledger line[/] (line {', '.join(map(str, ledger.torn_lines))}), "
            "left by an interrupted write."
        )
    return lines


def status(
    as_json: bool = typer.Option(
        False, "--json", help="Print the leaderboard and state as JSON on stdout."
    ),
) -> None:
    """Show the leaderboard (mean bpb and judge score over seeds with t intervals) and what is unfinished."""
    from vibe_research.research.settings import load_settings
    from vibe_research.research.state.experiments import leaderboard, rebuild_state
    from vibe_research.research.state.ledger import read
    from vibe_research.research.workspace import find_workspace

    workspace = find_workspace()
    settings = load_settings(workspace.settings_file)
    ledger = read(workspace.ledger)
    state = rebuild_state(ledger.records)
    rows = leaderboard(state, settings.research.confidence)
    if as_json:
        print(
            json.dumps(
                {
                    "question": settings.research.question,
                    "objective": settings.research.objective,
                    "best": state.best,
                    "leaderboard": [row.model_dump() for row in rows],
                    "open_experiment": state.open_experiment.id if state.open_experiment else None,
                    "interrupted": [
                        {"experiment": e.id, "run": run.run} for e, run in state.interrupted
                    ],
                    "torn_ledger_lines": ledger.torn_lines,
                },
                indent=2,
            )
        )
        return
    console = Console()
    console.print(
        f"[bold]{settings.research.question}[/]  (objective: {settings.research.objective})"
    )
    if rows:
        console.print(_table(rows, settings.research.confidence, console.width))
    else:
        console.print(
            "No experiments yet: run [bold]vibe-research continue[/] to measure the baseline."
        )
    for line in _unfinished(state, ledger):
        console.print(line)


def register(app: typer.Typer) -> None:
    app.command()(status)
