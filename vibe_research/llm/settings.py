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
    backend: Literal["auto", "openai", "offline"] = "auto"
    base_url: str | None = None  # env OPENAI_BASE_URL
    api_key_env: str = "OPENAI_API_KEY"
    proposer_model: str = "gpt-4.1"
    judge_model: str = "gpt-4.1-mini"
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    retry_backoff_s: float = Field(
        default=2.0, ge=0, description="first wait before a retry; doubles each time"
    )
    max_backoff_s: float = Field(default=60.0, ge=0)
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_output_tokens: int = Field(
        default=4_096, ge=64, description="completion cap per call; also the cost estimate"
    )
    max_usd: float | None = Field(
        default=5.0, ge=0, description="spend cap over the workspace's LLM call log"
    )
    prompt_token_budget: int = Field(default=24_000, ge=1_000)
    prices: dict[str, Price] = Field(default_factory=dict)

    def price(self, model: str) -> Price | None:
        """The price of `model`: [llm.prices] first, then the built-in table."""
        return self.prices.get(model) or DEFAULT_PRICES.get(model)
