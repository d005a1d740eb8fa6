"""[train] in vibe-research.toml."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str | None = None  # None: start a local Ray; "auto" or "ray://host:10001" to join
    gpus_per_run: float = Field(default=0, ge=0)
    cpus_per_run: float = Field(default=1, gt=0)
    memory_gb_per_run: float | None = Field(default=None, gt=0)
    # where workers find the token cache when it is mounted at another path than on this machine
    cache_dir: Path | None = None
    return_mb: float = Field(
        default=1024,
        gt=0,
        description="largest run folder a worker sends back whole; past it, the records only",
    )


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entry: str = "experiments/train.py"
    budget_s: float = Field(default=300, gt=0, description="wall clock of one training process")
    runs_per_proposal: int = Field(default=3, ge=1, le=8)
    smoke_budget_s: float = Field(
        default=60,
        gt=0,
        description="most seconds of the run that checks a change trains and loads; "
        "it stops at its first step, having compiled what the timed runs will compile",
    )
    first_seed: int = 0
    executor: Literal["local", "ray"] = "local"
    ray: RaySettings = Field(default_factory=RaySettings)
