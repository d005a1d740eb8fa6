"""vibe-research.toml: one pydantic model per section. [research] and [judge] are defined here;
[data], [train] and [llm] belong to the layer that uses them (lm.corpus, runs.settings,
llm.settings), and `Settings` puts them together for the loop and the CLI."""

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vibe_research.llm.settings import LLMSettings
from vibe_research.lm.corpus import DataSource
from vibe_research.lm.errors import load_toml_model
from vibe_research.runs.settings import TrainSettings

# Environment variables users expect to work, and the setting each one overrides.
ENV_OVERRIDES = {
    "OPENAI_BASE_URL": "llm.base_url",
    "VIBE_LLM_BACKEND": "llm.backend",
    "VIBE_BUDGET": "train.budget_s",
}


class ResearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = "What is the strongest TinyStories language model that trains in five minutes on this machine?"
    objective: Literal["bpb", "judge", "both"] = "both"
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    drift: float = Field(
        default=0.05,
        ge=0,
        description="relative difference of two sides' machine calibrations past which both are "
        "run again side by side (loop/drift.py)",
    )


class JudgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["auto", "heuristic", "llm"] = "auto"
    samples_per_run: int = Field(default=8, ge=1, le=64)
    pairwise: bool = True


class SessionSettings(BaseModel):
    """When an unattended session (`continue --auto N`) stops before its N turns."""

    model_config = ConfigDict(extra="forbid")
    max_hours: float | None = Field(
        default=None, gt=0, description="wall clock of one session; no new turn starts after it"
    )
    patience: int | None = Field(
        default=None, ge=1, description="stop after this many turns in a row without a new best"
    )
    max_failures: int = Field(
        default=3, ge=1, description="stop after this many failed turns in a row"
    )
    failure_backoff_s: float = Field(
        default=30.0, ge=0, description="wait after a failed turn, doubled after each further one"
    )


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    research: ResearchSettings = Field(default_factory=ResearchSettings)
    data: DataSource = Field(default_factory=DataSource)
    train: TrainSettings = Field(default_factory=TrainSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)


def load_settings(path: Path, environ: dict[str, str] | None = None) -> Settings:
    """Read vibe-research.toml (missing: defaults) with environment overrides applied on top.

    VIBE_DATA names a folder with train*.txt and valid.txt (and test.txt, the sealed test split,
    where there is one) and switches the data source to files.
    """
    env = os.environ if environ is None else environ
    overrides: dict = {key: env[name] for name, key in ENV_OVERRIDES.items() if env.get(name)}
    if env.get("VIBE_DATA"):
        folder = Path(env["VIBE_DATA"]).expanduser()
        overrides |= {
            "data.source": "files",
            "data.train": [str(folder / "train*.txt")],
            "data.valid": str(folder / "valid.txt"),
            "data.test": str(folder / "test.txt") if (folder / "test.txt").is_file() else None,
        }
    return load_toml_model(path, Settings, overrides)
