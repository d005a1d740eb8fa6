"""vibe-research.toml: one pydantic model per section, each owned by the layer that uses it."""

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from vibe_research.llm.settings import LLMSettings
from vibe_research.lm.corpus import DataSource
from vibe_research.lm.errors import load_toml_model
from vibe_research.research.settings import JudgeSettings, ResearchSettings
from vibe_research.runs.settings import TrainSettings

# Environment variables users expect to work, and the setting each one overrides.
ENV_OVERRIDES = {
    "OPENAI_BASE_URL": "llm.base_url",
    "VIBE_LLM_BACKEND": "llm.backend",
    "VIBE_BUDGET": "train.budget_s",
}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    research: ResearchSettings = Field(default_factory=ResearchSettings)
    data: DataSource = Field(default_factory=DataSource)
    train: TrainSettings = Field(default_factory=TrainSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)


def load_settings(path: Path, environ: dict[str, str] | None = None) -> Settings:
    """Read vibe-research.toml (missing: defaults) with environment overrides applied on top.

    VIBE_DATA names a folder with train*.txt and valid.txt and switches the data source to files.
    """
    env = os.environ if environ is None else environ
    overrides: dict = {key: env[name] for name, key in ENV_OVERRIDES.items() if env.get(name)}
    if env.get("VIBE_DATA"):
        folder = Path(env["VIBE_DATA"]).expanduser()
        overrides |= {
            "data.source": "files",
            "data.train": [str(folder / "train*.txt")],
            "data.valid": str(folder / "valid.txt"),
        }
    return load_toml_model(path, Settings, overrides)
