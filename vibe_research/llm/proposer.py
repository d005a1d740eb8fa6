"""The proposer interface, its LLM backend, and the choice between it and the offline planner."""

import logging
import os
from pathlib import Path
from typing import Protocol

from vibe_research.llm.client import LLMClient
from vibe_research.llm.context import ResearchContext
from vibe_research.llm.planner import OfflinePlanner
from vibe_research.llm.schemas import Proposal, Suggestions
from vibe_research.llm.settings import LLMSettings

log = logging.getLogger(__name__)


class Proposer(Protocol):
    name: str

    def propose(self, context: ResearchContext) -> Proposal: ...

    def suggest(self, context: ResearchContext) -> Suggestions: ...


class LLMProposer:
    """Asks an OpenAI-compatible model; the prompt is already in the context."""

    def __init__(self, client: LLMClient, model: str) -> None:
        self.client = client
        self.model = model
        self.name = f"llm:{model}"

    def propose(self, context: ResearchContext) -> Proposal:
        proposal = self.client.structured(context.messages, Proposal, self.model)
        # The move key belongs to the offline planner's catalogue; an LLM cannot claim one.
        return proposal.model_copy(update={"move": None})

    def suggest(self, context: ResearchContext) -> Suggestions:
        suggestions = self.client.structured(context.messages, Suggestions, self.model)
        return Suggestions(
            items=[item.model_copy(update={"move": None}) for item in suggestions.items]
        )


def resolve_backend(settings: LLMSettings) -> str:
    """llm.backend, with `auto` made concrete: openai when a base URL or an API key is set."""
    if settings.backend != "auto":
        return settings.backend
    return "openai" if settings.base_url or os.environ.get(settings.api_key_env) else "offline"


def make_proposer(settings: LLMSettings, log_path: Path) -> Proposer:
    """The proposer llm.backend names (see resolve_backend)."""
    if resolve_backend(settings) == "offline":
        log.info("proposer: the offline planner (no LLM endpoint configured)")
        return OfflinePlanner()
    log.info("proposer: %s at %s", settings.proposer_model, settings.base_url or "api.openai.com")
    return LLMProposer(LLMClient(settings, log_path), settings.proposer_model)
