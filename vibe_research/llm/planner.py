"""The offline planner: the proposer that needs no LLM.

It instantiates the move catalogue against the current experiments/ files, drops every move
whose setting the history shows as measured, and ranks the rest: a move's prior, plus what its
direction (e.g. `lr/up`) gained when tried before, plus half of what its family gained.
The researcher's pick (a move key) or own idea (matched by keywords) comes first; the Steering
section of the notes removes moves it avoids or that train longer than its budget, and puts the
moves it prefers first (llm/steering.py).
"""

import logging
import re
from collections import Counter, defaultdict
from statistics import mean

from vibe_research.llm.context import ResearchContext
from vibe_research.llm.moves import Move, catalogue, measured_settings
from vibe_research.llm.schemas import Proposal, Suggestion, Suggestions, Tried
from vibe_research.llm.steering import Steering, matches, parse_steering
from vibe_research.lm.errors import UserError

log = logging.getLogger(__name__)

FAILED_GAIN = -0.01  # a move that failed to apply or run counts as this much worse (bpb)
MAX_FAILURES = 2  # failures after which a move is not proposed again


class OfflinePlanner:
    name = "offline"

    def propose(self, context: ResearchContext) -> Proposal:
        ranked = rank(context)
        if not ranked:
            raise _exhausted()
        move, note = _choose(ranked, context, retriable(context, ranked))
        log.info("offline planner: %s (%s)", move.title, move.key)
        rationale = f"{move.why}. {_evidence(move, context.history)}" + (f" {note}" if note else "")
        gains = _gains(context.history)
        return Proposal(
            title=move.title,
            hypothesis=move.hypothesis,
            rationale=rationale,
            expected_effect=_expected(move, gains),
            risk=move.risk,
            edits=list(move.edits),
            runs=list(move.runs),
            move=move.key,
        )

    def suggest(self, context: ResearchContext) -> Suggestions:
        ranked = rank(context)
        if len(ranked) < 2:
            raise _exhausted()
        gains = _gains(context.history)
        items = [
            Suggestion(
                title=move.title,
                idea=move.idea,
                why=f"{move.why}. {_evidence(move, context.history)}",
                expected_effect=_expected(move, gains),
                cost_minutes=round(
                    sum(len(run.seeds) for run in move.runs) * context.budget_s / 60, 1
                ),
                risk=move.risk,
                move=move.key,
            )
            for move in ranked[:3]
        ]
        return Suggestions(items=items)


def rank(context: ResearchContext) -> list[Move]:
    """Untried moves, best first; ties keep catalogue order. A move that failed once (a crash, a
    sandbox refusal: often the environment, since catalogue edits are known to apply) may come
    back, ranked down by its failure; after a second failure it is tried."""
    measured, failures = _outcomes(context.history)
    tried = measured | {setting for setting, count in failures.items() if count >= MAX_FAILURES}
    gains = _gains(context.history)
    steering = parse_steering(context.steering)
    fresh = [
        move
        for move in catalogue(context)
        if move.identity not in tried and _allowed(move, steering, context.budget_s)
    ]
    return sorted(fresh, key=lambda move: (not _preferred(move, steering), -_score(move, gains)))


def _named(move: Move, terms: tuple[str, ...]) -> bool:
    return any(matches(term, move.family, move.title, move.words) for term in terms)


def _allowed(move: Move, steering: Steering, budget_s: float) -> bool:
    """Not a move the researcher's steering avoids, nor one that trains longer than it allows."""
    if _named(move, steering.avoid):
        return False
    minutes = sum(len(run.seeds) for run in move.runs) * budget_s / 60
    return steering.max_minutes is None or minutes <= steering.max_minutes


def _preferred(move: Move, steering: Steering) -> bool:
    return _named(move, steering.prefer)


def retriable(context: ResearchContext, ranked: list[Move]) -> list[Move]:
    """Moves that failed and were never measured, no longer ranked: the researcher's own idea may
    still name one (after fixing what made it fail)."""
    measured, failures = _outcomes(context.history)
    offered = {move.key for move in ranked}
    return [
        move
        for move in catalogue(context)
        if move.identity in failures and move.identity not in measured and move.key not in offered
    ]


def _outcomes(history: list[Tried]) -> tuple[set[str], Counter[str]]:
    """The settings measured so far, and how often each failed move's setting failed."""
    measured = {
        setting
        for item in history
        if item.move and not _failed(item)
        for setting in measured_settings(item.move)
    }
    failures = Counter(
        measured_settings(item.move)[0] for item in history if item.move and _failed(item)
    )
    return measured, failures


def _failed(item: Tried) -> bool:
    return item.verdict.startswith(("fail", "crash"))


def _gains(history: list[Tried]) -> dict[str, list[float]]:
    """bpb improvements seen so far, by family (`lr`) and by direction (`lr/up`)."""
    gains: dict[str, list[float]] = defaultdict(list)
    for item in history:
        if not item.move:
            continue
        if item.delta_bpb is not None:
            gain = -item.delta_bpb
        elif _failed(item):
            gain = FAILED_GAIN
        else:
            continue
        variant = item.move.partition(":")[0]
        gains[variant].append(gain)
        gains[variant.partition("/")[0]].append(gain)
    return gains


def _score(move: Move, gains: dict[str, list[float]]) -> float:
    if move.variant in gains:
        return move.prior + mean(gains[move.variant])
    if move.family in gains:
        return move.prior + 0.5 * mean(gains[move.family])
    return move.prior


def _choose(
    ranked: list[Move], context: ResearchContext, retry: list[Move] | None = None
) -> tuple[Move, str]:
    """The move to propose, and a sentence on how the researcher's choice was honoured. An idea
    matches the untried moves first, then those that only ever failed (`retry`)."""
    if context.pick is not None and context.pick.move:
        picked = next((move for move in ranked if move.key == context.pick.move), None)
        # the same kind of move, its details since changed (a fusion's base runs, after a drift
        # rerun gave the best more runs)
        variant = context.pick.move.partition(":")[0]
        picked = picked or next((move for move in ranked if move.variant == variant), None)
        if picked is not None:
            return picked, ""
        return (
            ranked[0],
            f"The picked move {context.pick.move} is tried or no longer applies; this is the top-ranked one instead.",
        )
    wish = context.idea or (f"{context.pick.title} {context.pick.idea}" if context.pick else "")
    if not wish:
        return ranked[0], ""
    # the move naming most of the idea's words; among equals, the better ranked
    retry = retry or []
    candidates = [*ranked, *retry]
    hits = [
        sum(bool(re.search(rf"\b{re.escape(word)}\b", wish, re.IGNORECASE)) for word in move.words)
        for move in candidates
    ]
    if max(hits) > 0:
        chosen = candidates[hits.index(max(hits))]
        again = " It failed before and is tried again on this request." if chosen in retry else ""
        return chosen, f"Chosen for the researcher's idea: {wish!r}.{again}"
    return (
        ranked[0],
        f"The offline planner has no move for the idea {wish!r}; this is its top-ranked move. An LLM backend can act on free text.",
    )


def _evidence(move: Move, history: list[Tried]) -> str:
    seen = [
        item
        for item in history
        if item.move and item.move.partition("/")[0] == move.family and item.delta_bpb is not None
    ]
    if not seen:
        return "No evidence yet in this family; the expected effect is the catalogue's prior."
    best = min(seen, key=lambda item: item.delta_bpb or 0.0)
    return f"{len(seen)} earlier {move.family} experiment(s); best change {best.delta_bpb:+.4f} bpb ({best.title})."


def _expected(move: Move, gains: dict[str, list[float]]) -> str:
    if not move.edits and move.family == "seeds":
        # its prior only ranks it (first after an inconclusive verdict); the model does not change
        return "no change in bpb: it measures how far seeds alone move the result"
    return f"validation bpb {-_score(move, gains):+.3f} (estimate), story quality about the same"


def _exhausted() -> UserError:
    return UserError(
        "the offline planner has tried every move its catalogue has for this configuration; "
        "give your own change with an LLM backend (set llm.base_url or $OPENAI_API_KEY) or edit experiments/ by hand"
    )
