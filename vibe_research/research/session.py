"""A `continue` session: which turns to run, from the flags or from the researcher at the menu."""

import logging

from rich.console import Console

from vibe_research.llm.schemas import Suggestion
from vibe_research.lm.errors import UserError
from vibe_research.research import gitops
from vibe_research.research.ledger import (
    DecisionRecord,
    PickRecord,
    PlannedRun,
    ProposalRecord,
    experiment_id,
)
from vibe_research.research.loop import (
    has_baseline,
    interrupted_turn,
    run_experiment,
    run_turn,
    write_notes,
)
from vibe_research.research.menu import Choice, parse_choice, show_menu, show_turn
from vibe_research.research.state import ExperimentState
from vibe_research.research.turn import Direction, Env, Interrupted, decide

log = logging.getLogger(__name__)


def manual(env: Env, title: str) -> str:
    """Record the researcher's uncommitted experiments/ changes as an experiment and run it."""
    state = env.state()
    exp = experiment_id(state.next_number, title)
    commit = gitops.commit_manual(env.root, exp, title)
    planned = [PlannedRun(seed=seed) for seed in env.seeds()]
    env.record(
        ProposalRecord(
            experiment=exp,
            title=title,
            hypothesis="The researcher's own change.",
            source="manual",
            commit=commit,
            diff=gitops.diff_of(env.root, commit),
            entry=env.settings.train.entry,
            runs=planned,
        )
    )
    run_experiment(env, exp, env.settings.train.entry, planned, commit)
    return exp


class Session:
    def __init__(self, env: Env, console: Console, interactive: bool) -> None:
        self.env = env
        self.console = console
        self.interactive = interactive

    # ----- what the researcher chose ------------------------------------------------------------

    def _suggestion(self, number: int) -> tuple[str, Suggestion]:
        offered = self.env.state().last_suggestions
        if offered is None or not 1 <= number <= len(offered.items):
            count = len(offered.items) if offered else 0
            raise UserError(
                f"--pick {number}: the last turn offered {count} suggestion(s); "
                "run `vibe-research status` to see them, or use --idea TEXT"
            )
        item = offered.items[number - 1]
        return offered.experiment, Suggestion(
            title=item.title,
            idea=item.idea,
            why=item.why or "-",
            expected_effect=item.expected_effect or "-",
            cost_minutes=item.cost_minutes or 1.0,
            risk=item.risk if item.risk in ("low", "medium", "high") else "medium",
            move=item.move,
        )

    def _direction(self, choice: Choice, by: str = "researcher") -> Direction:
        """Record the pick on the experiment it follows, and turn it into a Direction."""
        state = self.env.state()
        last = max(state.experiments.values(), key=lambda e: e.number, default=None)
        if choice.action == "pick" and choice.number is not None:
            after, suggestion = self._suggestion(choice.number)
            self.env.record(
                PickRecord(
                    experiment=after,
                    choice=choice.number,
                    title=suggestion.title,
                    idea=suggestion.idea,
                    by=by,
                )
            )  # type: ignore[arg-type]
            return Direction(pick=suggestion)
        if last is not None:
            self.env.record(
                PickRecord(
                    experiment=last.id,
                    choice=None,
                    title="own idea",
                    idea=choice.text,
                    by="researcher",
                )
            )
        return Direction(idea=choice.text)

    # ----- turns --------------------------------------------------------------------------------

    def _turn(
        self, direction: Direction | None, rerun_of: tuple[str, int] | None = None
    ) -> ExperimentState | None:
        try:
            exp, _ = run_turn(self.env, direction, rerun_of)
        except Interrupted as stop:
            interrupted_turn(self.env)
            raise KeyboardInterrupt(str(stop)) from None
        state = self.env.state()
        experiment = state.experiments[exp]
        show_turn(self.console, state, experiment)
        return experiment

    def _resume_prompt(self) -> None:
        """Say what an earlier session left unfinished; interactively, offer to rerun or drop it."""
        open_experiment = self.env.state().open_experiment
        if open_experiment is None:
            return
        missing = len(open_experiment.interrupted_runs)
        self.console.print(
            f"[yellow]{open_experiment.id}[/] ({open_experiment.title}) was interrupted with "
            f"{missing} unfinished run(s).",
            highlight=False,
        )
        if not self.interactive:
            self.console.print("resuming it", highlight=False)
            return
        answer = self.console.input("rerun the unfinished runs? [Y/n] ").strip().lower()
        if answer in ("n", "no"):
            decision = decide(self.env, open_experiment.id, by_researcher=False)
            write_notes(self.env, open_experiment.id, decision.verdict)
            self.console.print(f"{open_experiment.id} discarded", highlight=False)

    def _auto(self, turns: int) -> None:
        for number in range(1, turns + 1):
            offered = self.env.state().last_suggestions
            if offered is None or not offered.items:
                self.console.print("no suggestion to take: stopping", highlight=False)
                return
            self.console.print(
                f"[bold]unattended turn {number} of {turns}[/]: {offered.items[0].title}",
                highlight=False,
            )
            self._turn(self._direction(Choice("pick", 1), by="auto"))

    def _needs_first_turn(self) -> bool:
        state = self.env.state()
        return state.open_experiment is not None or not has_baseline(state)

    def start(
        self, pick: int | None = None, idea: str | None = None, auto: int | None = None
    ) -> None:
        self._resume_prompt()
        if self._needs_first_turn():
            first = self._turn(None)
            if (
                first
                and first.decision
                and first.decision.verdict == "failed"
                and first.proposal
                and first.proposal.source == "baseline"
            ):
                raise UserError(
                    f"the baseline failed ({first.decision.reason.splitlines()[0][:300]}): fix "
                    f"{self.env.settings.train.entry} and run `vibe-research continue` again"
                )
        if pick is not None:
            self._turn(self._direction(Choice("pick", pick)))
        elif idea is not None:
            self._turn(self._direction(Choice("idea", text=idea)))
        elif auto is not None:
            self._auto(auto)
        elif self.interactive:
            self._menu()

    # ----- the menu -----------------------------------------------------------------------------

    def _menu(self) -> None:
        while True:
            count = show_menu(self.console, self.env.state().last_suggestions)
            choice = parse_choice(self.console.input("[bold]next>[/] "), count)
            if isinstance(choice, str):
                self.console.print(choice, style="yellow", highlight=False)
                continue
            if choice.action == "quit":
                return
            self._act(choice)

    def _act(self, choice: Choice) -> None:
        state = self.env.state()
        last = max(state.experiments.values(), key=lambda e: e.number, default=None)
        if choice.action == "idea" and not choice.text:
            choice = Choice("idea", text=self.console.input("your idea: ").strip())
            if not choice.text:
                return
        if choice.action in ("pick", "idea"):
            self._turn(self._direction(choice))
        elif choice.action == "auto" and choice.number:
            self._auto(choice.number)
        elif choice.action == "rerun" and last is not None:
            self._turn(None, rerun_of=(last.id, self.env.settings.train.runs_per_proposal))
        elif choice.action in ("keep", "discard") and last is not None:
            self._override(last, keep=choice.action == "keep")

    def _override(self, experiment: ExperimentState, keep: bool) -> None:
        decision: DecisionRecord = decide(self.env, experiment.id, by_researcher=keep)
        write_notes(self.env, experiment.id, decision.verdict)
        self.console.print(
            f"{experiment.id} {'kept' if keep else 'discarded'} by you (verdict was {decision.verdict})",
            highlight=False,
        )
