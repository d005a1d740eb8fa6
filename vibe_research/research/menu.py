"""The menu after each turn: the turn's results as a table, the next steps, and the keys.

Parsing is a pure function so the keys are tested without a terminal; the pexpect test drives
the real thing.
"""

from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.table import Table

from vibe_research.research.ledger import SuggestionsRecord
from vibe_research.research.state import ExperimentState, ResearchState

KEYS = (
    "[bold]1-{n}[/] pick   [bold]e[/] your own idea   [bold]a N[/] N turns unattended   "
    "[bold]r[/] rerun with more seeds   [bold]k[/]/[bold]d[/] keep/discard against the verdict   [bold]q[/] quit"
)


@dataclass(frozen=True)
class Choice:
    action: Literal["pick", "idea", "auto", "rerun", "keep", "discard", "quit"]
    number: int | None = None  # the suggestion picked, or the number of unattended turns
    text: str = ""


def parse_choice(answer: str, suggestions: int) -> Choice | str:
    """The researcher's answer as a Choice, or a one-line hint of what is valid."""
    words = answer.strip().split(maxsplit=1)
    if not words:
        return "type a number, e, a N, r, k, d or q"
    key, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    if key.isdigit():
        number = int(key)
        if 1 <= number <= suggestions:
            return Choice("pick", number)
        return (
            f"there are {suggestions} suggestions: pick 1 to {suggestions}"
            if suggestions
            else "no suggestions to pick from: use e"
        )
    simple = {"r": "rerun", "k": "keep", "d": "discard", "q": "quit"}
    if key in simple:
        return Choice(simple[key])  # type: ignore[arg-type]
    if key == "e":
        return Choice("idea", text=rest)
    if key == "a":
        if rest.isdigit() and int(rest) >= 1:
            return Choice("auto", int(rest))
        return "a N runs N turns unattended, for example: a 3"
    return f"unknown choice {answer.strip()!r}: type a number, e, a N, r, k, d or q"


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def results_table(experiment: ExperimentState) -> Table:
    table = Table(title=f"{experiment.id}: {experiment.title}", title_justify="left")
    sweep = experiment.is_sweep
    for column in (
        "run",
        *(["setting"] if sweep else []),
        "seed",
        "outcome",
        "steps",
        "tok/s",
        "bpb",
        "ppl",
        "judge",
    ):
        table.add_column(
            column, justify="left" if column in ("run", "setting", "outcome") else "right"
        )
    for run in experiment.runs.values():
        end, ev, judged = run.end, run.evaluation, run.judgement
        table.add_row(
            run.run,
            *([run.setting] if sweep else []),
            str(run.seed),
            end.outcome if end else "running?",
            f"{end.steps:,}" if end and end.steps else "",
            f"{end.tokens_per_s:,.0f}" if end and end.tokens_per_s else "",
            _fmt(ev.bpb if ev else None),
            _fmt(ev.perplexity if ev else None, 2),
            _fmt(judged.overall if judged and judged.scores else None, 2),
        )
    return table


def show_turn(console: Console, state: ResearchState, experiment: ExperimentState) -> None:
    console.print(results_table(experiment))
    decision = experiment.decision
    if decision:
        colour = {"better": "green", "baseline": "cyan", "worse": "red", "failed": "red"}.get(
            decision.verdict, "yellow"
        )
        kept = "kept" if decision.kept else "discarded"
        console.print(
            f"[{colour}]{decision.verdict}[/] ({kept}): {decision.reason}", highlight=False
        )
    if experiment.overhead:
        last = experiment.overhead[-1]
        spent = sum(last.seconds.values())
        console.print(
            f"turn: {last.turn_s:.0f} s, {spent:.1f} s ({spent / max(last.turn_s, 1e-9):.1%}) outside training and evaluation",
            style="dim",
            highlight=False,
        )
    if experiment.is_sweep and experiment.chosen:
        console.print(
            f"best setting of the sweep: {experiment.chosen} (its runs stand for the experiment)",
            highlight=False,
        )
    best = state.best_experiment
    if best and best.bpbs:
        console.print(
            f"current best: {best.id} at {sum(best.bpbs) / len(best.bpbs):.4f} bpb ({best.entry})",
            style="bold",
            highlight=False,
        )
    trainer = state.current_for(experiment.entry)
    if trainer and trainer.id != (best.id if best else None) and trainer.bpbs:
        console.print(
            f"{experiment.entry} stands at {trainer.id}, {sum(trainer.bpbs) / len(trainer.bpbs):.4f} bpb",
            highlight=False,
        )


def show_menu(console: Console, suggestions: SuggestionsRecord | None) -> int:
    """Print the numbered next steps and the keys; returns how many suggestions there are."""
    items = suggestions.items if suggestions else []
    if items:
        table = Table(title="Next steps", title_justify="left", show_lines=True)
        for column in ("#", "step", "expected effect", "cost", "risk"):
            table.add_column(column, overflow="fold")
        for number, item in enumerate(items, start=1):
            cost = f"{item.cost_minutes:g} min" if item.cost_minutes is not None else ""
            table.add_row(
                str(number),
                f"[bold]{item.title}[/]\n{item.idea}\n[dim]{item.why}[/]",
                item.expected_effect,
                cost,
                item.risk,
            )
        console.print(table)
    console.print(KEYS.format(n=len(items) or 0), highlight=False)
    return len(items)
