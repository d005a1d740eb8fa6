"""What one training run is: the code, the seed, the budget, the overrides, and where it lives."""

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class RunSpec(BaseModel):
    """One training and its evaluation. Paths are absolute; `entry` is relative to the workspace."""

    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    workspace: Path
    entry: str = "experiments/train.py"
    seed: int = 0
    budget_s: float = Field(gt=0)
    overrides: dict[str, str] = Field(default_factory=dict)
    run_dir: Path
    cache_dir: Path
    # the token cache the run may read; None: asked of the entry with --describe before training
    tokenizer: str | None = None
    samples: int = Field(default=8, ge=0, description="story samples the evaluation draws")
    evaluate: bool = True
    # a short benchmark of the machine before training (runs/calibrate.py), outside the budget,
    # so comparisons can tell a slower machine from a worse model; the smoke run skips it
    calibrate: bool = True
    # Ask the training to stop early (SIGTERM; it saves and exits): after it reports this many
    # steps, or this many seconds in. The smoke run uses both; a timed run neither.
    stop_after_steps: int | None = Field(default=None, ge=1)
    stop_after_s: float | None = Field(default=None, gt=0)

    @property
    def entry_path(self) -> Path:
        return self.workspace / self.entry

    def set_args(self) -> list[str]:
        return [arg for key, value in self.overrides.items() for arg in ("--set", f"{key}={value}")]


def run_id(prefix: str, stamp: str, seed: int, index: int) -> str:
    """`PREFIX-YYYYmmdd-HHMMSS-sSEED-INDEX`: sorts by time within a prefix, unique within a batch."""
    return f"{prefix}-{stamp}-s{seed}-{index}"


def plan_runs(
    workspace: Path,
    runs_dir: Path,
    cache_dir: Path,
    entry: str,
    budget_s: float,
    runs: list[tuple[int, dict[str, str]]],
    prefix: str,
    samples: int = 8,
) -> list[RunSpec]:
    """One RunSpec per (seed, overrides), each with its own folder under `runs_dir`; `prefix`
    names what they belong to (an experiment's number, `smoke`, `train`)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    specs = []
    for index, (seed, overrides) in enumerate(runs):
        name = run_id(prefix, stamp, seed, index)
        specs.append(
            RunSpec(
                run_id=name,
                workspace=workspace,
                entry=entry,
                seed=seed,
                budget_s=budget_s,
                overrides=dict(overrides),
                run_dir=runs_dir / name,
                cache_dir=cache_dir,
                samples=samples,
            )
        )
    return specs
