"""What a proposer is given: the rendered prompt for an LLM and the same facts as plain data."""

from dataclasses import dataclass, field, replace

from vibe_research.llm.prompts import render
from vibe_research.llm.schemas import Proposal, Suggestion, Tried

Message = dict[str, str]


@dataclass(frozen=True)
class ResearchContext:
    """One request to a proposer.

    `messages` is the chat prompt (built by research/propose/context.py) that LLM backends send;
    the offline planner reads the plain fields instead.
    """

    messages: list[Message]
    files: dict[str, str]  # workspace-relative path under experiments/ -> current text
    history: list[Tried] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget_s: float = 300.0  # wall clock of one training run
    # run folders of the current best transformer's runs (one per seed), for fusion
    base_runs: list[str] = field(default_factory=list)
    pick: Suggestion | None = None
    idea: str | None = None
    steering: str = ""  # the researcher's Steering section of notes/README.md

    def after_failure(self, proposal: Proposal, error: str) -> "ResearchContext":
        """The context for a second try: the failed proposal and its exact error are history."""
        retry = render("fix.md", error=error.strip())
        failed = Tried(
            title=proposal.title, verdict="failed to apply or smoke-run", move=proposal.move
        )
        return replace(
            self,
            messages=[
                *self.messages,
                {"role": "assistant", "content": proposal.model_dump_json()},
                {"role": "user", "content": retry},
            ],
            history=[*self.history, failed],
        )
