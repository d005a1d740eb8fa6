"""Ask for a proposal, apply its edits, smoke-run it; on failure give the exact error back once."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vibe_research.llm.context import ResearchContext
from vibe_research.llm.errors import LLMError
from vibe_research.llm.proposer import Proposer
from vibe_research.llm.schemas import Proposal
from vibe_research.lm.caches import tokenizer_problem
from vibe_research.research.propose.edits import AppliedEdits, EditRejected, apply_edits

log = logging.getLogger(__name__)

# Runs the proposal for a few seconds in the sandbox; returns the error text, or None if it ran.
SmokeCheck = Callable[[Proposal], str | None]
# Told what the edits wrote before the smoke run starts, so a crash can undo exactly that.
OnApplied = Callable[[AppliedEdits], None]
TRIES = 2  # a failed proposal is shown its error once; a second failure is the turn's


@dataclass(frozen=True)
class Attempt:
    proposal: Proposal
    error: str | None  # None: applied and smoke-run cleanly
    stage: Literal["apply", "smoke"] | None


@dataclass(frozen=True)
class ProposalOutcome:
    attempts: list[Attempt]
    applied: AppliedEdits | None  # the edits now on disk; None when every attempt failed
    # the LLM failed on the retry after a failed attempt: the attempts so far still count
    retry_error: LLMError | None = None

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
    proposer: Proposer,
    context: ResearchContext,
    root: Path,
    smoke_check: SmokeCheck,
    on_applied: OnApplied,
) -> ProposalOutcome:
    """Up to two proposals; the first that applies and survives the smoke run stays on disk.

    An LLM failure on the first request is raised (there is nothing to record but the failure);
    on the retry it ends the tries, and the outcome keeps the failed attempt and the error.
    """
    attempts: list[Attempt] = []
    for number in range(1, TRIES + 1):
        try:
            proposal = proposer.propose(context)
        except LLMError as failed:
            if not attempts:
                raise
            return ProposalOutcome(attempts, None, failed)
        attempt, applied = _attempt(proposal, root, smoke_check, on_applied)
        attempts.append(attempt)
        if applied is not None:
            return ProposalOutcome(attempts, applied)
        log.warning(
            "proposal %d of %d failed at %s: %s", number, TRIES, attempt.stage, attempt.error
        )
        context = context.after_failure(proposal, attempt.error or "")
    return ProposalOutcome(attempts, None)


def _check_runs(proposal: Proposal) -> None:
    for request in proposal.runs:
        named = request.overrides.get("tokenizer")
        if named is not None and (problem := tokenizer_problem(str(named))):
            raise EditRejected(f"runs: {problem}")


def _attempt(
    proposal: Proposal, root: Path, smoke_check: SmokeCheck, on_applied: OnApplied
) -> tuple[Attempt, AppliedEdits | None]:
    try:
        _check_runs(proposal)
        applied = apply_edits(root, proposal.edits)
    except EditRejected as exc:
        return Attempt(proposal, str(exc), "apply"), None
    for match in applied.matches:
        if match.match == "whitespace":
            log.info("%s: search block matched only when ignoring whitespace", match.path)
    on_applied(applied)
    error = smoke_check(proposal)
    if error is not None:
        for path in applied.revert():
            log.warning("%s changed during the smoke run: left as it is", path)
        return Attempt(proposal, error, "smoke"), None
    return Attempt(proposal, None, None), applied
