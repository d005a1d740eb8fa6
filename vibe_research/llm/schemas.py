"""What a proposer returns: a Proposal (a change and the runs to measure it) and Suggestions.

These are the JSON schemas the LLM must answer in, so field descriptions are written for it.
"""

from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Risk = Literal["low", "medium", "high"]
Scalar = bool | int | float | str


class Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="file under experiments/, e.g. experiments/train.py")
    search: str = Field(
        description="exact text now in the file, matching exactly once; empty only to create a new file"
    )
    replace: str = Field(description="the text that takes its place")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seeds: list[int] = Field(min_length=1, max_length=8, description="one training run per seed")
    overrides: dict[str, Scalar] = Field(
        default_factory=dict, description="CONFIG keys passed as --set key=value"
    )
    entry: str | None = Field(
        default=None, description="experiment script, default experiments/train.py"
    )

    @model_validator(mode="before")
    @classmethod
    def _seed_alias(cls, data: Any) -> Any:
        """LLMs often write one `seed`; accept it as a list of one."""
        if isinstance(data, dict) and "seed" in data and "seeds" not in data:
            data = {**data, "seeds": [data["seed"]]}
            del data["seed"]
        return data

    @field_validator("entry")
    @classmethod
    def _entry_in_experiments(cls, entry: str | None) -> str | None:
        if entry is None:
            return None
        path = PurePosixPath(entry)
        if (
            path.is_absolute()
            or ".." in path.parts
            or path.parts[:1] != ("experiments",)
            or path.suffix != ".py"
        ):
            raise ValueError(
                f"entry {entry!r} must be a .py file under experiments/, e.g. experiments/ngram.py"
            )
        return entry


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=3, max_length=120, description="short, names the change")
    hypothesis: str = Field(description="what you expect to happen and why, testable")
    rationale: str = Field(description="the evidence in the notes that points here")
    expected_effect: str = Field(description="e.g. 'bpb -0.02, stories unchanged'")
    risk: Risk
    edits: list[Edit] = Field(
        default_factory=list, description="search/replace blocks; empty for a run-only sweep"
    )
    runs: list[RunRequest] = Field(min_length=1, max_length=8)
    move: str | None = Field(
        default=None, description="leave empty (the offline planner's key of the move)"
    )


class Suggestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=3, max_length=120)
    idea: str = Field(description="what to change, concretely")
    why: str = Field(description="the result in the notes that motivates it")
    expected_effect: str
    cost_minutes: float = Field(gt=0, description="wall-clock minutes of training it needs")
    risk: Risk
    move: str | None = Field(
        default=None, description="leave empty (the offline planner's key of the move)"
    )


class Suggestions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Suggestion] = Field(
        min_length=2, max_length=3, description="two or three next steps, best first"
    )


class Tried(BaseModel):
    """One earlier experiment, as the proposer sees it: enough to never repeat it."""

    model_config = ConfigDict(extra="forbid")
    title: str
    verdict: str = Field(description="better, worse, inconclusive, failed, ...")
    move: str | None = None
    delta_bpb: float | None = Field(
        default=None, description="candidate minus best; negative is better"
    )
    detail: str = Field(
        default="",
        description="more of the result for the prompt, e.g. the judge score and the test",
    )

    def line(self) -> str:
        delta = f", bpb {self.delta_bpb:+.4f}" if self.delta_bpb is not None else ""
        key = f" [{self.move}]" if self.move else ""
        detail = f"; {self.detail}" if self.detail else ""
        return f"- {self.title}{key}: {self.verdict}{delta}{detail}"
