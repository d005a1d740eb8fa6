"""How an LLM call fails: one class per outcome the research loop records, all `LLMError`.

Each message is one line that says what to do. `kind` names the outcome for a ledger record.
"""

import re
from typing import Any, ClassVar

from vibe_research.lm.errors import UserError


class LLMError(UserError):
    """The endpoint failed or answered unusably; the message says what to change."""

    kind: ClassVar[str] = "llm_error"


class NoAPIKey(LLMError):
    """Neither an API key nor a local server is configured."""

    kind = "not_configured"


class InvalidReply(LLMError):
    """The model answered, but twice (the repair round included) with nothing that fits the schema."""

    kind = "invalid_reply"


class EndpointError(LLMError):
    """The endpoint answered with an HTTP error, or not at all. `status` is None without a reply."""

    kind = "endpoint"

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class RequestRejected(EndpointError):
    """An HTTP status that asking again does not change (400, 401, 403, 404, 422, ...): not retried."""

    kind = "rejected"


class EndpointUnavailable(EndpointError):
    """429, 5xx, timeouts or refused connections on every one of llm.max_retries + 1 attempts."""

    kind = "unavailable"


class DeadlineExceeded(LLMError):
    """llm.deadline_s passed before a usable reply (attempts, their backoff and the repair together)."""

    kind = "deadline"


class BudgetExceeded(LLMError):
    """The next call could pass llm.max_usd, counted over the workspace's whole call log."""

    kind = "budget"

    def __init__(self, message: str, spent_usd: float, estimate_usd: float) -> None:
        super().__init__(message)
        self.spent_usd = spent_usd
        self.estimate_usd = estimate_usd


class ContextTooLong(LLMError):
    """The prompt (with room for the reply) is over the model's context. The loop can lower
    llm.prompt_token_budget to `smaller_budget()` and ask again."""

    kind = "context_length"

    def __init__(
        self,
        message: str,
        server_message: str,
        limit: int | None,
        server_prompt_tokens: int | None,
        counted_prompt_tokens: int,
        max_output_tokens: int,
    ) -> None:
        super().__init__(message)
        self.server_message = server_message  # what the server said, on one line
        self.limit = limit  # the model's context in tokens, where the server said it
        self.server_prompt_tokens = server_prompt_tokens  # the prompt as the server counted it
        self.counted_prompt_tokens = counted_prompt_tokens  # the same prompt as counted here
        self.max_output_tokens = max_output_tokens

    def smaller_budget(self) -> int:
        """A prompt token budget (counted here, as llm.prompt_token_budget is) that should fit;
        0 when llm.max_output_tokens alone fills the model's context."""
        counted = self.counted_prompt_tokens
        fits = int(counted * SHRINK)
        if self.limit is not None:
            # The server's tokenizer is not ours: scale its room by its tokens per token of ours.
            ratio = (self.server_prompt_tokens or counted) / max(counted, 1)
            by_limit = int((self.limit - self.max_output_tokens) / ratio * SAFETY)
            if by_limit < counted:
                fits = by_limit
        return max(0, fits)


SAFETY = 0.9  # of the room the server names, for the framing tokens neither count sees
SHRINK = 0.75  # of the prompt that was too long, when the server names no limit

# How servers say a prompt is over the context. OpenAI and Azure send the code; the others only
# words: vLLM ("maximum context length is N tokens", "longer than the maximum model length of N"),
# llama.cpp (type exceed_context_size_error, "exceeds the available context size"), Ollama
# ("the input length exceeds the context length"), OpenAI-compatible proxies ("prompt is too long").
CONTEXT_CODES = {"context_length_exceeded", "exceed_context_size_error", "string_above_max_length"}
CONTEXT_WORDS = re.compile(
    r"maximum context length|context length (?:exceeded|is)|exceeds? (?:the )?(?:available )?"
    r"context (?:size|length|window)|maximum model length|context window|prompt is too long"
    r"|too many tokens|reduce the length of the (?:messages|prompt)",
    re.IGNORECASE,
)
LIMIT_PATTERNS = (
    r"maximum context length is (\d+)",
    r"maximum model length of (\d+)",
    r"available context size \((\d+) tokens\)",
    r"context (?:length|window|size) of (\d+)",
    r"limit of (\d+) tokens",
)
PROMPT_PATTERNS = (
    r"messages resulted in (\d+) tokens",
    r"\((\d+) in the messages",
    r"request has (\d+) input tokens",
    r"prompt contains at least (\d+) input tokens",
    r"prompt \(length (\d+)\)",
    r"request \((\d+) tokens\)",
    r"resulted in (\d+) tokens",
)


def context_overflow(body: Any, text: str) -> tuple[int | None, int | None] | None:
    """(limit, prompt tokens) where the error body or text says the prompt is over the context
    (either may be None: not every server says it), else None."""
    fields = body if isinstance(body, dict) else {}
    codes = {str(fields.get("code")), str(fields.get("type"))}
    if not codes & CONTEXT_CODES and not CONTEXT_WORDS.search(text):
        return None
    limit = _int_field(fields, "n_ctx") or _first_number(LIMIT_PATTERNS, text)
    prompt = _int_field(fields, "n_prompt_tokens") or _first_number(PROMPT_PATTERNS, text)
    return limit, prompt


def _int_field(fields: dict[str, Any], name: str) -> int | None:
    value = fields.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_number(patterns: tuple[str, ...], text: str) -> int | None:
    for pattern in patterns:
        found = re.search(pattern, text, re.IGNORECASE)
        if found:
            return int(found.group(1))
    return None
