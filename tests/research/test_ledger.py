"""The ledger: append-only, fsynced, torn-line tolerant, and a pure fold into research state."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from research_records import many_records

from vibe_research.lm.errors import UserError
from vibe_research.research.notes.render import render_notes
from vibe_research.research.state import ledger as L
from vibe_research.research.state.experiments import leaderboard, rebuild_state
from vibe_research.research.workspace import Workspace

QUESTION = "Which model writes the best stories in five minutes?"


def _dumps(records: list[L.Record]) -> list[str]:
    return [record.model_dump_json() for record in records]


def test_records_round_trip_in_order(tmp_path: Path, records: list[L.Record]) -> None:
    path = tmp_path / "notes" / "ledger.jsonl"
    for record in records:
        L.append(path, record)
    read = L.read(path)
    assert _dumps(read.records) == _dumps(records) and read.torn_lines == []
    assert all(json.loads(line)["v"] == L.LEDGER_VERSION for line in path.read_text().splitlines())


def test_a_torn_last_line_is_skipped_reported_and_cut_off_by_the_next_append(
    tmp_path: Path, records: list[L.Record]
) -> None:
    path = tmp_path / "ledger.jsonl"
    for record in records[:3]:
        L.append(path, record)
    with path.open("ab") as handle:
        handle.write(records[3].model_dump_json().encode()[:37])
    assert _dumps(L.read(path).records) == _dumps(records[:3]) and L.read(path).torn_lines == [4]
    L.append(path, records[3])
    read = L.read(path)
    assert _dumps(read.records) == _dumps(records[:4]) and read.torn_lines == []


def test_a_bad_line_in_the_middle_is_damage_and_the_repair_keeps_every_record(
    tmp_path: Path, records: list[L.Record]
) -> None:
    path = tmp_path / "notes" / "ledger.jsonl"
    for record in records[:4]:
        L.append(path, record)
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:30]  # the decision of an experiment, damaged by an editor or a disk
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(L.LedgerDamaged, match=r"ledger.jsonl:2: not JSON, and not the last line"):
        L.read(path)
    done = L.repair(path, tmp_path / ".vibe")
    assert done.kept == 3 and done.set_aside == [2]
    assert done.side_file.read_bytes() == lines[1] + b"\n"
    assert _dumps(L.read(path).records) == _dumps([records[0], records[2], records[3]])


def test_a_complete_line_that_is_not_a_record_is_corruption(
    tmp_path: Path, records: list[L.Record]
) -> None:
    path = tmp_path / "ledger.jsonl"
    L.append(path, records[0])
    with path.open("a") as handle:
        handle.write(json.dumps({"v": 1, "kind": "proposal", "experiment": "0001-x"}) + "\n")
    L.append(path, records[1])
    with pytest.raises(
        L.LedgerDamaged, match=r"ledger.jsonl:2: not a valid ledger record .*ledger repair"
    ):
        L.read(path)


def test_a_newer_format_asks_for_an_upgrade(tmp_path: Path, records: list[L.Record]) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(records[0].model_dump_json().replace('"v":1', '"v":9') + "\n")
    with pytest.raises(UserError, match=r"v9 is newer.*upgrade vibe-research"):
        L.read(path)


def test_experiment_ids_are_numbered_slugs() -> None:
    assert L.experiment_id(7, "Wider model: d=192, 4 heads!") == "0007-wider-model-d-192-4-heads"
    assert L.experiment_id(0, "???") == "0000-experiment"


def test_state_fold_finds_best_interrupted_and_picks(records: list[L.Record]) -> None:
    state = rebuild_state(records)
    assert list(state.experiments) == ["0000-baseline", "0001-wider-model", "0002-n-gram-teacher"]
    assert state.best == "0001-wider-model" and state.next_number == 3
    assert [(e.id, run.run) for e, run in state.interrupted] == [
        ("0002-n-gram-teacher", "0002-n-gram-teacher-s3")
    ]
    assert state.open_experiment is None
    assert state.last_pick is not None and state.last_pick.idea == "try shallow fusion at 0.3"
    assert state.experiments["0001-wider-model"].bpbs == [1.20, 1.21, 1.205]
    rows = leaderboard(state)
    assert [row.experiment for row in rows] == [
        "0001-wider-model",
        "0002-n-gram-teacher",
        "0000-baseline",
    ]
    assert rows[0].best and rows[0].bpb is not None and rows[0].bpb.n == 3


def test_an_undecided_experiment_is_open_and_a_researcher_override_moves_the_best(
    records: list[L.Record],
) -> None:
    proposal = L.ProposalRecord(experiment="0003-deeper", title="Deeper", hypothesis="depth helps")
    start = L.RunStartRecord(experiment="0003-deeper", run="r0", seed=0, budget_s=300)
    state = rebuild_state([*records, proposal, start])
    assert state.open_experiment is not None and state.open_experiment.id == "0003-deeper"
    assert ("0003-deeper", "r0") in [(e.id, run.run) for e, run in state.interrupted]
    override = L.DecisionRecord(
        experiment="0002-n-gram-teacher", verdict="inconclusive", kept=True, by="researcher"
    )
    assert rebuild_state([*records, override]).best == "0002-n-gram-teacher"
    discard = L.DecisionRecord(
        experiment="0001-wider-model", verdict="worse", kept=False, by="researcher"
    )
    assert rebuild_state([*records, discard]).best == "0000-baseline"


def _writer(workspace: Workspace, expected: list[L.Record]) -> None:
    """The child: carry on from whatever the ledger holds, appending and re-rendering, until killed."""
    done = len(L.read(workspace.ledger).records)
    for record in expected[done:]:
        L.append(workspace.ledger, record)
        records = L.read(workspace.ledger).records
        render_notes(workspace, rebuild_state(records), QUESTION)


def _torn_append(path: Path, expected: list[L.Record], rng: random.Random) -> None:
    """Part of the next record, no newline: what a write cut short by a crash leaves behind."""
    done = len(L.read(path).records)
    if done < len(expected):
        line = expected[done].model_dump_json().encode()
        with path.open("ab") as handle:
            handle.write(line[: rng.randrange(1, len(line) - 1)])


def _rendered(workspace: Workspace) -> dict[str, bytes]:
    return {
        str(path.relative_to(workspace.root)): path.read_bytes()
        for path in sorted(workspace.notes.rglob("*.md"))
    }


def test_sigkill_at_random_points_never_leaves_an_inconsistent_ledger_or_notes(
    tmp_path: Path,
) -> None:
    expected = many_records(12)
    workspace = Workspace(tmp_path / "ws")
    rng = random.Random(1234)
    torn_seen = 0
    for kill in range(100):
        pid = os.fork()
        if pid == 0:
            try:
                _writer(workspace, expected)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if kill % 4 == 3:
            _torn_append(workspace.ledger, expected, rng)
        # the next start: a prefix of what was written, in order, and the notes it renders
        read = L.read(workspace.ledger)
        torn_seen += bool(read.torn_lines)
        assert _dumps(read.records) == _dumps(expected[: len(read.records)]), (
            f"kill {kill}: ledger is not a prefix"
        )
        render_notes(workspace, rebuild_state(read.records), QUESTION)
        fresh = Workspace(tmp_path / f"fresh{kill}")
        render_notes(fresh, rebuild_state(expected[: len(read.records)]), QUESTION)
        assert _rendered(workspace) == _rendered(fresh), (
            f"kill {kill}: notes differ from a clean render"
        )
        assert not list(workspace.notes.rglob(".*.tmp"))
    final = L.read(workspace.ledger)
    assert len(final.records) > 20, "the writer should have made progress between kills"
    assert torn_seen >= 20, "every fourth start should have met a torn line"
    print(
        f"{len(final.records)} records written across 100 SIGKILLs; {torn_seen} starts read past a torn line"
    )


def test_loss_curves_are_thinned_and_steps_without_loss_dropped() -> None:
    curve = [(0.1 * i, i, None if i % 7 == 0 else 5.0 - 0.001 * i) for i in range(1000)]
    points = L.loss_points(curve)
    assert len(points) == L.MAX_LOSS_POINTS and points[-1].step == 999 and points[0].step == 1
    assert [p.step for p in points] == sorted(p.step for p in points)
    assert len(L.loss_points(curve[:50])) == 50 - 8


def test_compare_with_best_uses_the_seeds_of_both(records: list[L.Record]) -> None:
    from vibe_research.research.state.experiments import compare_with_best

    state = rebuild_state(records)
    comparison = compare_with_best(state, "0002-n-gram-teacher", "bpb")
    assert comparison is not None and comparison.bpb is not None and comparison.bpb.n_best == 3
    assert comparison.bpb.diff == pytest.approx(0.025)
    assert compare_with_best(state, "0001-wider-model", "both") is None


def test_an_experiment_id_cannot_name_a_path_outside_the_notes() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        L.NoteRecord(experiment="../../etc/passwd", text="x")


def test_ledger_repair_from_the_command_line(tmp_path: Path, records: list[L.Record]) -> None:
    (tmp_path / "vibe-research.toml").write_text("")
    path = tmp_path / "notes" / "ledger.jsonl"
    for record in records[:3]:
        L.append(path, record)
    path.write_bytes(path.read_bytes().replace(b'"kind":', b'"kind"', 1))
    listed = subprocess.run(
        [sys.executable, "-m", "vibe_research", "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 2 and "vibe-research ledger repair" in listed.stderr
    assert listed.stderr.count("\n") == 1
    done = subprocess.run(
        [sys.executable, "-m", "vibe_research", "ledger", "repair"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "kept 2 records; line(s) 1 moved to" in done.stderr
    assert len(L.read(path).records) == 2
