"""[llm] in vibe-research.toml."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(ge=0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(ge=0, description="USD per million completion tokens")


# OpenAI list prices (USD per million tokens) when this table was written; entries in
# [llm.prices] override them. Models absent from both are counted as free, with a warning.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4.1": Price(input_per_mtok=2.0, output_per_mtok=8.0),
    "gpt-4.1-mini": Price(input_per_mtok=0.4, output_per_mtok=1.6),
    "gpt-4.1-nano": Price(input_per_mtok=0.1, output_per_mtok=0.4),
    "gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10.0),
    "gpt-4o-mini": Price(input_per_mtok=0.15, output_per_mtok=0.6),
}


class LLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["auto", "openai", "offline"] = Field(
        default="auto",
        description="openai: any OpenAI-compatible endpoint; offline: the planner, no LLM; "
        "auto: openai when llm.base_url or the API key is set",
    )
    base_url: str | None = Field(
        default=None, description="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"
    )  # env OPENAI_BASE_URL
    api_key_env: str = Field(
        default="OPENAI_API_KEY", description="the environment variable that holds the key"
    )
    proposer_model: str = "gpt-4.1"
    judge_model: str = "gpt-4.1-mini"
    # A research turn waits on these: a hung endpoint costs at most deadline_s per call, then the
    # loop records the failure and goes on.
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds one HTTP attempt waits for its reply (never past llm.deadline_s)",
    )
    deadline_s: float = Field(
        default=120.0,
        gt=0,
        description="seconds one structured call may take in all (attempts, waits between them, "
        "the repair round) before it gives up",
    )
    max_retries: int = Field(
        default=4,
        ge=0,
        description="more attempts after a 429, 5xx, timeout or refused connection, within llm.deadline_s",
    )
    retry_backoff_s: float = Field(
        default=2.0, ge=0, description="first wait before a retry; doubles each time"
    )
    max_backoff_s: float = Field(
        default=30.0,
        ge=0,
        description="longest wait before a retry, a server's Retry-After included",
    )
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_output_tokens: int = Field(
        default=4_096, ge=64, description="completion cap per call; also the cost estimate"
    )
    max_usd: float | None = Field(
        default=5.0,
        ge=0,
        description="spend cap over the workspace's LLM call log, every client and process together",
    )
    prompt_token_budget: int = Field(
        default=24_000,
        ge=1_000,
        description="most tokens of a proposer prompt; lower it for a model with a small context",
    )
    prices: dict[str, Price] = Field(
        default_factory=dict, description="USD per million tokens by model, over the built-in table"
    )

    def price(self, model: str) -> Price | None:
        """The price of `model`: [llm.prices] first, then the built-in table."""
        return self.prices.get(model) or DEFAULT_PRICES.get(model)
