"""Where stories come from: local files, the Hugging Face hub, or the built-in synthetic generator."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DataSource(BaseModel):
    """[data] in vibe-research.toml. Validation is always its own split, never carved from train."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["auto", "files", "hub", "synthetic"] = "auto"
    # files: train globs/paths and a validation path (env VIBE_DATA: a folder with train*.txt and valid.txt)
    train: list[str] = Field(default_factory=list)
    valid: str | None = None
    text_column: str = "text"
    # hub
    hub_dataset: str = "roneneldan/TinyStories"
    hub_revision: str | None = None
    hub_train_split: str = "train"
    hub_valid_split: str = "validation"
    limit: int | None = Field(default=None, gt=0, description="at most this many train stories")
    # synthetic
    synthetic_train_stories: int = Field(default=20_000, gt=0)
    synthetic_valid_stories: int = Field(default=500, gt=0)
    seed: int = 0
    # the tokenizer `data prepare` builds when none is named
    tokenizer: str = "bpe:4096"
