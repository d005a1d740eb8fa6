"""The terminal side of a `continue` session (research.loop.env.SessionUI): lines and live
progress bars on stderr, each turn's results as a table, the menu of next steps, questions.

Text from models and LLMs (titles, ideas, reasons) is escaped: it is shown, never read as markup.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vibe_research.cli.progress import RunProgress
from vibe_research.research.state.experiments import ExperimentState, ResearchState
from vibe_research.research.state.ledger import SuggestionsRecord
from vibe_research.research.stats import describe_gain
from vibe_research.runs.events import OnEvent
from vibe_research.runs.spec import RunSpec

KEYS = (
    "[bold]1-{n}[/] pick   [bold]e[/] your own idea   [bold]a N[/] N turns unattended   "
    "[bold]r[/] rerun with more seeds   [bold]k[/]/[bold]d[/] keep/discard against the verdict   "
    "[bold]q[/] quit"
)
VERDICT_COLOUR = {"better": "green", "baseline": "cyan", "worse": "red", "failed": "red"}
INDICATIVE = "too few runs a side for a test: press r (rerun with more seeds) to decide"


class ConsoleUI:
    def __init__(self, console: Console) -> None:
        self.console = console

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    @contextmanager
    def progress(self, specs: list[RunSpec]) -> Iterator[OnEvent]:
        with RunProgress(specs, console=self.console) as on_event:
            yield on_event

    def ask(self, prompt: str) -> str:
        return self.console.input(f"[bold]{escape(prompt)}[/]")

    def show_turn(self, state: ResearchState, experiment: ExperimentState) -> None:
        print_ = self.console.print
        print_(results_table(experiment))
        decision = experiment.decision
        if decision:
            colour = VERDICT_COLOUR.get(decision.verdict, "yellow")
            kept = "kept" if decision.kept else "discarded"
            print_(
                f"[{colour}]{decision.verdict}[/] ({kept}): {escape(decision.reason)}",
                highlight=False,
            )
            if decision.verdict == "indicative":
                print_(INDICATIVE, style="yellow", highlight=False)
            if decision.drift:
                print_(f"machine speed: {escape(decision.drift)}", style="yellow", highlight=False)
            if decision.gain is not None:
                print_(f"where it came from: {describe_gain(decision.gain)}", highlight=False)
        if experiment.overhead:
            last = experiment.overhead[-1]
            spent = sum(last.seconds.values())
            share = spent / max(last.turn_s, 1e-9)
            print_(
                f"turn: {last.turn_s:.0f} s, {spent:.1f} s ({share:.1%}) outside training and evaluation",
                style="dim",
                highlight=False,
            )
        if experiment.is_sweep and experiment.chosen:
            print_(
                f"best setting of the sweep: {escape(experiment.chosen)} (its runs stand for the experiment)",
                highlight=False,
            )
        best = state.best_experiment
        if best and best.bpbs:
            mean = sum(best.bpbs) / len(best.bpbs)
            print_(
                f"current best: {best.id} at {mean:.4f} bpb ({best.entry})",
                style="bold",
                highlight=False,
            )
        trainer = state.current_for(experiment.entry)
        if trainer and trainer.id != (best.id if best else None) and trainer.bpbs:
            mean = sum(trainer.bpbs) / len(trainer.bpbs)
            print_(f"{experiment.entry} stands at {trainer.id}, {mean:.4f} bpb", highlight=False)

    def show_menu(self, suggestions: SuggestionsRecord | None) -> int:
        items = suggestions.items if suggestions else []
        if items:
            table = Table(title="Next steps", title_justify="left", show_lines=True)
            for column in ("#", "step", "expected effect", "cost", "risk"):
                table.add_column(column, overflow="fold")
            for number, item in enumerate(items, start=1):
                table.add_row(
                    str(number),
                    f"[bold]{escape(item.title)}[/]\n{escape(item.idea)}\n[dim]{escape(item.why)}[/]",
                    escape(item.expected_effect),
                    f"{item.cost_minutes:g} min",
                    item.risk,
                )
            self.console.print(table)
        self.console.print(KEYS.format(n=len(items) or 0), highlight=False)
        return len(items)


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def results_table(experiment: ExperimentState) -> Table:
    """One row per run: seed, outcome, steps, tokens/s, bpb, perplexity and judge score."""
    table = Table(title=escape(f"{experiment.id}: {experiment.title}"), title_justify="left")
    sweep = experiment.is_sweep
    columns = (
        "run",
        *(["setting"] if sweep else []),
        "seed",
        "outcome",
        "steps",
        "tok/s",
        "bpb",
        "ppl",
        "judge",
    )
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("run", "setting", "outcome") else "right"
        )
    for run in experiment.runs.values():
        end, ev, judged = run.end, run.evaluation, run.judgement
        table.add_row(
            run.run,
            *([escape(run.setting)] if sweep else []),
            str(run.seed),
            end.outcome if end else "running?",
            f"{end.steps:,}" if end and end.steps else "",
            f"{end.tokens_per_s:,.0f}" if end and end.tokens_per_s else "",
            _number(ev.bpb if ev else None),
            _number(ev.perplexity if ev else None, 2),
            _number(judged.overall if judged and judged.scores else None, 2),
        )
    return table
