"""What one run produced: its outcome, a summary of its events, the evaluation, and provenance.

Stored as RUN_DIR/result.json (`format_version` names the layout).
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vibe_research.lm.evaluate import EvalResult
from vibe_research.runs.calibrate import Calibration
from vibe_research.runs.spec import RunSpec
from vibe_research.sandbox.probe import ProtectionReport

FORMAT_VERSION = 1

Outcome = Literal[
    "ok",
    "timeout",
    "out_of_memory",
    "nan",
    "crash",
    "sandbox_violation",
    "bad_model",
    "interrupted",
]


class EventSummary(BaseModel):
    """What the run's events said: the last of each figure, and the loss curve."""

    model_config = ConfigDict(extra="forbid")
    steps: int = 0
    tokens: int = 0
    tokens_per_s: float | None = None
    params: int | None = None
    device: str | None = None
    dtype: str | None = None
    loss_curve: list[tuple[float, int, float | None]] = Field(
        default_factory=list
    )  # (elapsed_s, step, loss)
    done: bool = False  # a `done` event arrived

    @property
    def last_loss(self) -> float | None:
        return self.loss_curve[-1][2] if self.loss_curve else None


class RunResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION
    run_id: str
    spec: RunSpec
    outcome: Outcome
    reason: str = ""
    exit_code: int | None = None  # of the training process; negative: killed by that signal
    log_tail: str = ""
    summary: EventSummary = Field(default_factory=EventSummary)
    started: datetime
    ended: datetime
    duration_s: float
    evaluation: EvalResult | None = None
    calibration: Calibration | None = None  # the machine's speed around the run (runs/calibrate.py)
    sandbox: ProtectionReport
    lm_fingerprint: str
    python: str
    torch: str | None
    hostname: str

    @property
    def bpb(self) -> float | None:
        return self.evaluation.bpb if self.evaluation else None
