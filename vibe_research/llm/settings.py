"""[llm] in vibe-research.toml."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(ge=0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(ge=0, description="USD per million completion tokens")


class LLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["auto", "openai", "offline"] = "auto"
    base_url: str | None = None  # env OPENAI_BASE_URL
    api_key_env: str = "OPENAI_API_KEY"
    proposer_model: str = "gpt-4.1"
    judge_model: str = "gpt-4.1-mini"
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_usd: float | None = Field(default=5.0, ge=0)
    prompt_token_budget: int = Field(default=24_000, ge=1_000)
    prices: dict[str, Price] = Field(default_factory=dict)
