"""[research] and [judge] in vibe-research.toml."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ResearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = "What is the strongest TinyStories language model that trains in five minutes on this machine?"
    objective: Literal["bpb", "judge", "both"] = "both"
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class JudgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["auto", "heuristic", "llm"] = "auto"
    samples_per_run: int = Field(default=8, ge=1, le=64)
    pairwise: bool = True
