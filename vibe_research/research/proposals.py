"""Ask for a proposal, apply its edits, smoke-run it; on failure give the exact error back once."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vibe_research.llm.context import ResearchContext
from vibe_research.llm.proposer import Proposer
from vibe_research.llm.schemas import Proposal
from vibe_research.research.edits import AppliedEdits, EditRejected, apply_edits

log = logging.getLogger(__name__)

# Runs the proposal for a few seconds in the sandbox; returns the error text, or None if it ran.
SmokeCheck = Callable[[Proposal], str | None]
TRIES = 2


@dataclass(frozen=True)
class Attempt:
    proposal: Proposal
    error: str | None  # None: applied and smoke-run cleanly
    stage: Literal["apply", "smoke"] | None


@dataclass(frozen=True)
class ProposalOutcome:
    attempts: list[Attempt]
    applied: AppliedEdits | None  # the edits now on disk; None when every attempt failed

    @property
    def ok(self) -> bool:
        return self.applied is not None

    @property
    def proposal(self) -> Proposal:
        return self.attempts[-1].proposal

    @property
    def failure(self) -> str | None:
        """Why the proposal was recorded as failed (the last attempt's error), or None."""
        return None if self.ok else self.attempts[-1].error


def propose_and_apply(
    proposer: Proposer, context: ResearchContext, root: Path, smoke_check: SmokeCheck
) -> ProposalOutcome:
    """Up to two proposals; the first that applies and survives the smoke run stays on disk."""
    attempts: list[Attempt] = []
    for number in range(1, TRIES + 1):
        proposal = proposer.propose(context)
        attempt, applied = _attempt(proposal, root, smoke_check)
        attempts.append(attempt)
        if applied is not None:
            return ProposalOutcome(attempts, applied)
        log.warning(
            "proposal %d of %d failed at %s: %s", number, TRIES, attempt.stage, attempt.error
        )
        context = context.after_failure(proposal, attempt.error or "")
    return ProposalOutcome(attempts, None)


def _attempt(
    proposal: Proposal, root: Path, smoke_check: SmokeCheck
) -> tuple[Attempt, AppliedEdits | None]:
    try:
        applied = apply_edits(root, proposal.edits)
    except EditRejected as exc:
        return Attempt(proposal, str(exc), "apply"), None
    for match in applied.matches:
        if match.match == "whitespace":
            log.info("%s: search block matched only when ignoring whitespace", match.path)
    error = smoke_check(proposal)
    if error is not None:
        applied.revert()
        return Attempt(proposal, error, "smoke"), None
    return Attempt(proposal, None, None), applied
