"""A `continue` session: which turns to run, from the flags or from the researcher at the menu,
and when an unattended session stops (its turns done, the clock, no new best for a while, the
spend cap, failures in a row). Every stop is recorded in the ledger with its reason.
"""

import logging
import time
from dataclasses import dataclass

from vibe_research.llm.errors import BudgetExceeded
from vibe_research.lm.errors import UserError
from vibe_research.research import gitops
from vibe_research.research.loop.decide import decide
from vibe_research.research.loop.env import Env, SessionUI
from vibe_research.research.loop.menu import Choice, parse_choice
from vibe_research.research.loop.turn import (
    Direction,
    Request,
    Turn,
    run_turn,
    start_of,
    write_notes,
)
from vibe_research.research.settings import SessionSettings
from vibe_research.research.state.ledger import PickRecord, SessionRecord

log = logging.getLogger(__name__)


class Stopped(Exception):
    """An unattended session met a stop condition; the message is the reason."""


def stop_reason(
    limits: SessionSettings,
    number: int,
    wanted: int,
    elapsed_s: float,
    since_best: int,
    failures: int,
) -> str | None:
    """Why an unattended session should not start turn `number` of `wanted`, or None: its turns
    are done, its hours are up, no new best for `patience` turns, or too many failures in a row."""
    if number > wanted:
        return f"{wanted} unattended turn(s) done"
    if limits.max_hours is not None and elapsed_s > limits.max_hours * 3600:
        return f"the session's {limits.max_hours:g} h are up"
    if limits.patience is not None and since_best >= limits.patience:
        return f"no new best in {since_best} turns (patience {limits.patience})"
    if failures >= limits.max_failures:
        return f"{failures} failed turns in a row (session.max_failures = {limits.max_failures})"
    return None


@dataclass
class Session:
    env: Env
    ui: SessionUI
    interactive: bool
    limits: SessionSettings
    turns: int = 0
    started: float = 0.0
    failures: int = 0  # failed turns in a row
    since_best: int = 0  # turns in a row that found no new best

    # ----- what the researcher chose ------------------------------------------------------------

    def _direction(self, choice: Choice, by: str = "researcher") -> Direction:
        """Record the pick on the experiment it follows, and turn it into a Direction."""
        state = self.env.state()
        offered = state.last_suggestions
        if choice.action == "pick" and choice.number is not None:
            if offered is None or not 1 <= choice.number <= len(offered.items):
                count = len(offered.items) if offered else 0
                raise UserError(
                    f"--pick {choice.number}: the last turn offered {count} suggestion(s); "
                    "run `vibe-research status` to see them, or use --idea TEXT"
                )
            item = offered.items[choice.number - 1]
            self.env.record(
                PickRecord(
                    experiment=offered.experiment,
                    choice=choice.number,
                    title=item.title,
                    idea=item.idea,
                    by=by,  # type: ignore[arg-type]
                )
            )
            return Direction(pick=item)
        last = max(state.experiments.values(), key=lambda e: e.number, default=None)
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

    def turn(self, request: Request) -> Turn:
        """Run turns until the one asked for has run: an open experiment is finished first, and a
        workspace without a baseline measures it first (turn.start_of decides)."""
        while True:
            done = self._one(request)
            # a turn left open (its judge failed) is finished by a later turn, not at once
            if done.start == request.kind or done.decision is None:
                return done

    def catch_up(self) -> None:
        """Before the menu: finish an open experiment and measure a missing baseline, so the menu
        offers next steps from a measured state."""
        while start_of(self.env.state(), Request()) in ("resume", "baseline"):
            if self._one(Request()).decision is None:
                return

    def _one(self, request: Request) -> Turn:
        best_before = self.env.state().best
        done = run_turn(self.env, request)
        self.turns += 1
        state = self.env.state()
        self.ui.show_turn(state, state.experiments[done.experiment])
        self._count(done, best_before != state.best)
        if done.start == "baseline" and done.decision and done.decision.verdict == "failed":
            reason = done.decision.reason.splitlines()[0][:300]
            raise UserError(
                f"the baseline failed ({reason}): fix {self.env.settings.train.entry} and run "
                "`vibe-research continue` again"
            )
        return done

    def _count(self, done: Turn, new_best: bool) -> None:
        failed = done.decision is None or done.decision.verdict == "failed"
        self.failures = self.failures + 1 if failed else 0
        self.since_best = 0 if new_best else self.since_best + 1

    def _resume_prompt(self) -> None:
        """Say what an earlier session left unfinished; interactively, offer to rerun or drop it."""
        open_experiment = self.env.state().open_experiment
        if open_experiment is None:
            return
        missing = len(open_experiment.interrupted_runs)
        self.ui.say(
            f"{open_experiment.id} ({open_experiment.title}) was interrupted with {missing} "
            "unfinished run(s)."
        )
        if not self.interactive:
            return
        if self.ui.ask("rerun the unfinished runs? [Y/n] ").strip().lower() in ("n", "no"):
            decision = decide(self.env, open_experiment.id, override=False)
            write_notes(self.env, open_experiment.id, decision.verdict)
            self.ui.say(f"{open_experiment.id} discarded")

    def auto(self, turns: int) -> None:
        """Up to `turns` turns, each taking the last turn's top suggestion (or, when there is none,
        the proposer's own choice), until a stop condition; a failed turn is followed by a wait
        that doubles with each further failure."""
        for number in range(1, turns + 2):
            elapsed = time.monotonic() - self.started
            reason = stop_reason(
                self.limits, number, turns, elapsed, self.since_best, self.failures
            )
            if reason is not None:
                raise Stopped(reason)
            if self.failures:
                wait = self.limits.failure_backoff_s * 2 ** (self.failures - 1)
                self.ui.say(f"{self.failures} failed turn(s) in a row: waiting {wait:g} s")
                time.sleep(wait)
            offered = self.env.state().last_suggestions
            if offered and offered.items:
                self.ui.say(f"unattended turn {number} of {turns}: {offered.items[0].title}")
                direction = self._direction(Choice("pick", 1), by="auto")
            else:
                self.ui.say(f"unattended turn {number} of {turns}: the proposer's own choice")
                direction = Direction()
            self.turn(Request(direction=direction))

    def start(
        self,
        pick: int | None = None,
        idea: str | None = None,
        auto: int | None = None,
        manual: str | None = None,
    ) -> None:
        """The session the flags ask for; its stop is recorded with the reason."""
        self.started = time.monotonic()
        self.env.record(SessionRecord(event="start", reason=self._flags(pick, idea, auto, manual)))
        reason = "done"
        try:
            self._resume_prompt()
            if manual is not None:
                self.turn(Request(kind="manual", title=manual))
            if pick is not None:
                self.turn(Request(direction=self._direction(Choice("pick", pick))))
            elif idea is not None:
                self.turn(Request(direction=self._direction(Choice("idea", text=idea))))
            elif auto is not None:
                self.auto(auto)
            elif self.interactive:
                self.catch_up()
                self.menu()
            elif manual is None:
                self.turn(Request())
        except Stopped as stop:
            reason = str(stop)
            self.ui.say(f"stopping: {reason}")
        except BudgetExceeded as spent:
            reason = f"the spend cap: {spent}"
            self.ui.say(f"stopping at {reason}")
        except KeyboardInterrupt:
            reason = "stopped by Ctrl-C (or a signal)"
            raise
        except UserError as error:
            reason = f"error: {error}"
            raise
        finally:
            self.env.record(SessionRecord(event="stop", reason=reason, turns=self.turns))
            gitops.commit_session_stop(self.env.root, self.env.workspace.ledger, reason)

    @staticmethod
    def _flags(pick: int | None, idea: str | None, auto: int | None, manual: str | None) -> str:
        given = {"--pick": pick, "--idea": idea, "--auto": auto, "--manual": manual}
        return (
            " ".join(f"{flag} {value}" for flag, value in given.items() if value is not None)
            or "menu"
        )

    # ----- the menu -----------------------------------------------------------------------------

    def menu(self) -> None:
        while True:
            count = self.ui.show_menu(self.env.state().last_suggestions)
            choice = parse_choice(self.ui.ask("next> "), count)
            if isinstance(choice, str):
                self.ui.say(choice)
                continue
            if choice.action == "quit":
                return
            self._act(choice)

    def _act(self, choice: Choice) -> None:
        state = self.env.state()
        last = max(state.experiments.values(), key=lambda e: e.number, default=None)
        if choice.action == "idea" and not choice.text:
            choice = Choice("idea", text=self.ui.ask("your idea: ").strip())
            if not choice.text:
                return
        if choice.action in ("pick", "idea"):
            self.turn(Request(direction=self._direction(choice)))
        elif choice.action == "auto" and choice.number:
            try:
                self.auto(choice.number)
            except Stopped as stop:
                self.ui.say(f"unattended turns stopped: {stop}")
        elif choice.action == "rerun" and last is not None:
            extra = self.env.settings.train.runs_per_proposal
            self.turn(Request(kind="rerun", experiment=last.id, extra_seeds=extra))
        elif choice.action in ("keep", "discard") and last is not None:
            self._override(last.id, keep=choice.action == "keep")

    def _override(self, experiment: str, keep: bool) -> None:
        decision = decide(self.env, experiment, override=keep)
        write_notes(self.env, experiment, decision.verdict)
        self.ui.say(
            f"{experiment} {'kept' if keep else 'discarded'} by you (verdict was {decision.verdict})"
        )
