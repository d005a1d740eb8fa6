"""notes/ledger.jsonl: the append-only machine record every notes page is rendered from.

One JSON object per line, one line per event, each a versioned pydantic record discriminated
by `kind`. Every append is flushed and fsynced before it returns, so a crash loses at most the
record being written; a torn last line is skipped on read and reported, and the next append
cuts it off first, so only the last line can ever be torn: a bad line anywhere else is damage,
said as such, with a repair that keeps every record. The records carry everything the pages
render, so the ledger alone rebuilds the notes.
"""

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from vibe_research.llm.schemas import Suggestion
from vibe_research.lm.errors import UserError, validation_error_line
from vibe_research.research.stats import Comparison, GainSplit
from vibe_research.runs.calibrate import Calibration

log = logging.getLogger(__name__)

LEDGER_VERSION = 1
DEFAULT_ENTRY = "experiments/train.py"


def _now() -> datetime:
    return datetime.now(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: int = LEDGER_VERSION
    at: datetime = Field(default_factory=_now)
    # the stem of the experiment's notes page, so nothing in it may leave notes/experiments/
    experiment: str = Field(
        pattern=r"^[0-9]{4,}-[a-z0-9-]+$", description="NNNN-slug, see experiment_id()"
    )


class PlannedRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int
    overrides: dict[str, str] = Field(default_factory=dict)


class ProposalRecord(_Record):
    """A change to try; `source` says who proposed it (baseline: the workspace as it stands)."""

    kind: Literal["proposal"] = "proposal"
    title: str
    hypothesis: str
    rationale: str = ""
    expected_effect: str = ""
    risk: str = ""
    source: Literal["baseline", "llm", "offline", "manual", "rerun"] = "llm"
    idea: str = Field(default="", description="the pick or the researcher's own idea it answers")
    diff: str = ""
    commit: str | None = None
    entry: str = Field(default=DEFAULT_ENTRY, description="the experiment script its runs train")
    move: str | None = Field(
        default=None, description="the offline planner's key for this kind of change"
    )
    runs: list[PlannedRun] = Field(default_factory=list)
    restored: str | None = Field(
        default=None, description="a rerun of a discarded change: the commit that put it back"
    )
    steering: str = Field(default="", description="the researcher's Steering section it saw")


class RunStartRecord(_Record):
    kind: Literal["run_start"] = "run_start"
    run: str = Field(
        description="run id, unique in the ledger (also its folder name under .vibe/runs)"
    )
    seed: int
    overrides: dict[str, str] = Field(default_factory=dict)
    budget_s: float
    commit: str | None = None
    batch: str | None = Field(
        default=None,
        description="runs of a candidate and its reference taken side by side, alternating, "
        "after their machine speeds differed: the comparison uses these on both sides",
    )


class LossPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    elapsed_s: float
    step: int
    loss: float


class RunEndRecord(_Record):
    kind: Literal["run_end"] = "run_end"
    run: str
    outcome: str = Field(description="the runner's outcome: ok, crashed, timeout, interrupted, ...")
    reason: str = ""
    steps: int | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    params: int | None = None
    device: str | None = None
    elapsed_s: float | None = None
    loss_curve: list[LossPoint] = Field(default_factory=list)
    log_tail: str = ""
    lm_fingerprint: str | None = Field(
        default=None, description="of vibe_research.lm, the evaluator that measured it"
    )
    versions: dict[str, str] = Field(
        default_factory=dict, description="python, torch, ... the run used"
    )
    calibration: Calibration | None = Field(
        default=None, description="the machine's speed and load around the run"
    )


MAX_LOSS_POINTS = 200  # per run: a readable curve, and a ledger line of a few kilobytes


def loss_points(
    curve: list[tuple[float, int, float | None]], limit: int = MAX_LOSS_POINTS
) -> list[LossPoint]:
    """(elapsed_s, step, loss) triples as the runner reports them, thinned evenly to `limit` points;
    steps that reported no loss are dropped. The last point is always kept."""
    points = [
        LossPoint(elapsed_s=t, step=step, loss=loss) for t, step, loss in curve if loss is not None
    ]
    if len(points) <= limit:
        return points
    stride = len(points) / (limit - 1)
    return [points[int(i * stride)] for i in range(limit - 1)] + [points[-1]]


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str
    seed: int
    text: str = Field(description="the prompt and its continuation")
    finished: bool | None = Field(
        default=None, description="ended with the end-of-story token, not the token limit"
    )


class EvaluationRecord(_Record):
    kind: Literal["evaluation"] = "evaluation"
    run: str
    bpb: float
    perplexity: float
    tokenizer: str
    samples: list[Sample] = Field(default_factory=list)


class SealedScoreRecord(_Record):
    """A run scored once on the sealed test split, when its experiment became the best. Nothing
    chooses by it and no prompt quotes it: it measures how optimistic the valid number became."""

    kind: Literal["test"] = "test"
    run: str
    bpb: float
    perplexity: float
    tokens: int
    source: str = Field(description="the test split's source, as the evaluator read it")


class SealedRejectedRecord(_Record):
    """A run of the best whose sealed test scoring failed (the evaluator rejected the model, or it
    crashed). Recorded so the notes say which runs the test number leaves out and why, and so the
    run is not asked again: retrying until a flaky model passes would select on the test split."""

    kind: Literal["test_rejected"] = "test_rejected"
    run: str
    outcome: str
    reason: str


class SampleScore(BaseModel):
    """The TinyStories rubric for one sample, 1 to 10 each."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str
    seed: int
    grammar: float
    creativity: float
    consistency: float
    plot: float
    rationale: str = ""

    @property
    def overall(self) -> float:
        return (self.grammar + self.creativity + self.consistency + self.plot) / 4.0


class PairwiseRecord(BaseModel):
    """Candidate against the best on the same beginnings, both orders; wins count 1, ties 0.5."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    against: str
    comparisons: int
    wins: float
    win_rate: float
    low: float
    high: float


def judge_identity(name: str, rubric_version: str) -> str:
    return f"{name} / {rubric_version}"


class JudgementRecord(_Record):
    kind: Literal["judgement"] = "judgement"
    run: str
    judge: str = Field(description="'heuristic' or the judge model's name")
    rubric_version: str
    scores: list[SampleScore]
    pairwise: PairwiseRecord | None = None

    @property
    def identity(self) -> str:
        """Which judge with which rubric: scores compare only within one identity."""
        return judge_identity(self.judge, self.rubric_version)

    @property
    def overall(self) -> float:
        """Mean rubric score over samples: the judge score that statistics compare."""
        return (
            sum(s.overall for s in self.scores) / len(self.scores) if self.scores else float("nan")
        )


class DecisionRecord(_Record):
    """Keep or discard: the statistics' verdict and what was done about it."""

    kind: Literal["decision"] = "decision"
    verdict: Literal["baseline", "better", "worse", "inconclusive", "indicative", "failed"]
    kept: bool
    by: Literal["auto", "researcher"] = "auto"
    against: str | None = Field(default=None, description="the best it was compared with")
    comparison: Comparison | None = None
    gain: GainSplit | None = Field(
        default=None, description="where the bpb difference came from: tokens seen or learning"
    )
    drift: str = Field(
        default="", description="the two sides ran at different machine speeds, and what was done"
    )
    reason: str = ""
    commit: str | None = Field(default=None, description="the keep or revert commit")
    tag: str | None = None


class SuggestionsRecord(_Record):
    kind: Literal["suggestions"] = "suggestions"
    items: list[Suggestion]


class PickRecord(_Record):
    """What the researcher chose after an experiment: a numbered suggestion or their own words."""

    kind: Literal["pick"] = "pick"
    choice: int | None = Field(
        default=None, description="1-based index into the suggestions; None for an own idea"
    )
    title: str = ""
    idea: str = ""
    by: Literal["researcher", "auto"] = "researcher"


class NoteRecord(_Record):
    """The researcher's own words about an experiment, shown on its page."""

    kind: Literal["note"] = "note"
    text: str


class OverheadRecord(_Record):
    """Seconds one turn spent outside training and evaluation, by phase (proposing, judging, ...)."""

    kind: Literal["overhead"] = "overhead"
    seconds: dict[str, float]
    turn_s: float


class LLMFailureRecord(_Record):
    """An LLM call that gave no usable answer (after its retries and repair round): which step
    of the experiment it was, the kind of failure (llm.errors' `kind`), and what it said."""

    kind: Literal["llm_failure"] = "llm_failure"
    stage: Literal["propose", "judge", "suggest"]
    failure: str = Field(description="invalid_reply, rejected, unavailable, deadline, ...")
    reason: str


class SessionRecord(_Record):
    """A `continue` session began or ended, and why it ended (a stop condition, the spend cap,
    failures in a row, the researcher). Belongs to no experiment."""

    kind: Literal["session"] = "session"
    experiment: str | None = Field(default=None, pattern=r"^[0-9]{4,}-[a-z0-9-]+$")
    event: Literal["start", "stop"]
    reason: str = ""
    turns: int = 0


Record = Annotated[
    ProposalRecord
    | RunStartRecord
    | RunEndRecord
    | EvaluationRecord
    | SealedScoreRecord
    | SealedRejectedRecord
    | JudgementRecord
    | DecisionRecord
    | SuggestionsRecord
    | PickRecord
    | NoteRecord
    | OverheadRecord
    | LLMFailureRecord
    | SessionRecord,
    Field(discriminator="kind"),
]
_RECORD = TypeAdapter(Record)


class LedgerRead(BaseModel):
    """The records that parsed, and the line numbers skipped as torn (a crash mid-append)."""

    records: list[Record]
    torn_lines: list[int] = Field(default_factory=list)


def append(path: Path, record: Record) -> None:
    """Append one record as a line, flushed and fsynced before returning.

    If the file ends in a torn line (a crash mid-write), the fragment is cut off first: it is a
    record that was never written whole (what it recorded is recorded again: a run's result
    from its run folder), and leaving it would put a bad line in the middle of the ledger.
    """
    line = (record.model_dump_json() + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    with path.open("r+b" if not fresh else "wb") as handle:
        end = handle.seek(0, os.SEEK_END)
        if end > 0 and not _ends_with_newline(path):
            data = path.read_bytes()
            keep = data.rfind(b"\n") + 1
            log.warning("%s: cut off a torn record (%d bytes) before appending", path, end - keep)
            handle.truncate(keep)
            handle.seek(keep)
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    if fresh:
        _fsync_dir(path.parent)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LedgerDamaged(UserError):
    """A line before the last is not a record: damage, not an interrupted append."""


REPAIR = "vibe-research ledger repair"


def read(path: Path) -> LedgerRead:
    """All records in order. Only the last line may be torn (an append a crash cut short: no
    newline, not JSON); it is skipped and reported. Any other bad line is damage: LedgerDamaged,
    naming the line and the repair that keeps every record."""
    if not path.exists():
        return LedgerRead(records=[])
    data = path.read_bytes()
    lines = data.split(b"\n")
    records: list[Record] = []
    torn: list[int] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        last = number == len(lines) and not data.endswith(b"\n")
        try:
            parsed = json.loads(raw)
        except ValueError:
            if last:
                torn.append(number)
                log.warning(
                    "%s:%d: skipped a torn record (%d bytes) left by an interrupted write",
                    path,
                    number,
                    len(raw),
                )
                continue
            raise LedgerDamaged(
                f"{path}:{number}: not JSON, and not the last line, so not a torn append: the ledger "
                f"was damaged; run `{REPAIR}` (it keeps every record and sets the bad line aside)"
            ) from None
        records.append(_parse(path, number, parsed))
    return LedgerRead(records=records, torn_lines=torn)


def _parse(path: Path, number: int, data: object) -> Record:
    version = data.get("v") if isinstance(data, dict) else None
    if isinstance(version, int) and version > LEDGER_VERSION:
        raise UserError(
            f"{path}:{number}: ledger format v{version} is newer than this vibe-research "
            f"(v{LEDGER_VERSION}); upgrade vibe-research to read it"
        )
    try:
        return _RECORD.validate_python(data)
    except ValidationError as exc:
        raise LedgerDamaged(
            f"{path}:{number}: not a valid ledger record ({validation_error_line('record', exc)}); "
            f"run `{REPAIR}` (it keeps every record and sets the bad line aside)"
        ) from exc


class Repair(BaseModel):
    kept: int
    set_aside: list[int] = Field(description="line numbers moved to the side file")
    side_file: Path | None = None


def repair(path: Path, side_folder: Path) -> Repair:
    """Keep every valid record, in order; move each line that is not one (damaged, torn, from a
    newer version) to `side_folder`/ledger-set-aside-TIME.jsonl, where nothing is lost. Atomic."""
    from vibe_research.lm.atomic import write_bytes

    if not path.exists():
        raise UserError(f"{path}: no ledger to repair")
    good, bad, numbers = [], [], []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            _RECORD.validate_python(json.loads(raw))
        except (ValueError, ValidationError):
            bad.append(raw)
            numbers.append(number)
            continue
        good.append(raw)
    side = None
    if bad:
        side = side_folder / f"ledger-set-aside-{_now().strftime('%Y%m%d-%H%M%S')}.jsonl"
        write_bytes(side, b"\n".join(bad) + b"\n")
    write_bytes(path, b"".join(line + b"\n" for line in good))
    return Repair(kept=len(good), set_aside=numbers, side_file=side)


def experiment_id(number: int, title: str) -> str:
    """NNNN-slug: the id in every record and the stem of the experiment's notes page."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = "-".join(words)[:48].rstrip("-") or "experiment"
    return f"{number:04d}-{slug}"
