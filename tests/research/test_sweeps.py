"""A sweep (runs that differ in overrides) is one summary per setting, and each experiment script
keeps its own line: a winning n-gram does not become what train.py changes are measured against."""

from pathlib import Path

from research_records import make_records

from vibe_research.research.notes.render import render_notes
from vibe_research.research.state import ledger as L
from vibe_research.research.state.experiments import (
    compare_with_best,
    leaderboard,
    names_run,
    rebuild_state,
    variant_overrides,
)
from vibe_research.research.stats import compare
from vibe_research.research.workspace import Workspace

SWEEP = "0003-sweep-n-gram-orders-2-to-6"
NGRAM = "experiments/ngram.py"
ORDERS = {2: 1.363, 3: 1.191, 4: 1.157, 5: 1.151, 6: 1.149}
SECOND_SEED_OF_6 = 1.151  # the best setting got a second seed (a rerun), so a test can decide


def _sweep(kept: bool) -> list[L.Record]:
    records: list[L.Record] = [
        L.ProposalRecord(
            experiment=SWEEP,
            title="Sweep n-gram orders 2 to 6",
            hypothesis="one order is best",
            source="offline",
            entry=NGRAM,
            move="ngram/sweep:ngram.order=2..6",
            runs=[L.PlannedRun(seed=0, overrides={"order": str(n)}) for n in ORDERS],
        )
    ]
    for n, bpb, seed in [*((n, bpb, 0) for n, bpb in ORDERS.items()), (6, SECOND_SEED_OF_6, 1)]:
        run = f"{SWEEP}-o{n}-s{seed}"
        records += [
            L.RunStartRecord(
                experiment=SWEEP, run=run, seed=seed, budget_s=120, overrides={"order": str(n)}
            ),
            L.RunEndRecord(
                experiment=SWEEP, run=run, outcome="ok", steps=1, tokens=978_111, elapsed_s=3.0
            ),
            L.EvaluationRecord(
                experiment=SWEEP,
                run=run,
                bpb=bpb,
                perplexity=2 ** (bpb * 4.04),
                tokenizer="bpe:4096",
            ),
        ]
    state = rebuild_state([*make_records(), *records])
    comparison = compare_with_best(state, SWEEP, "bpb")
    assert comparison is not None
    records.append(
        L.DecisionRecord(
            experiment=SWEEP,
            verdict=comparison.verdict,
            kept=kept,
            against="0001-wider-model",
            comparison=comparison,
            reason=comparison.reason,
        )
    )
    return [*make_records(), *records]


def test_a_sweep_stands_for_its_best_setting_not_the_pool_of_its_runs() -> None:
    state = rebuild_state(_sweep(kept=True))
    sweep = state.experiments[SWEEP]
    assert sweep.is_sweep and list(sweep.variants) == [f"order={n}" for n in ORDERS]
    assert sweep.chosen == "order=6" and sweep.bpbs == [1.149, SECOND_SEED_OF_6]
    assert sweep.decision is not None and sweep.decision.verdict == "better"
    row = next(row for row in leaderboard(state) if row.experiment == SWEEP)
    assert row.rank == 1 and row.setting == "order=6" and row.runs == 2 and row.best
    assert not state.experiments["0001-wider-model"].is_sweep
    assert (
        next(row for row in leaderboard(state) if row.experiment == "0001-wider-model").setting
        == ""
    )


def test_a_code_change_is_measured_against_its_script_and_runs_only_against_the_best() -> None:
    state = rebuild_state(_sweep(kept=True))
    assert state.current == {"experiments/train.py": "0001-wider-model", NGRAM: SWEEP}
    assert state.best == SWEEP
    deeper = L.ProposalRecord(
        experiment="0004-deeper", title="Deeper", hypothesis="depth helps", commit="c" * 40
    )
    fusion = L.ProposalRecord(
        experiment="0005-fusion",
        title="Fusion",
        hypothesis="fusing helps",
        entry="experiments/fusion.py",
    )
    state = rebuild_state([*_sweep(kept=True), deeper, fusion])
    reference = state.reference("0004-deeper")
    assert reference is not None and reference.id == "0001-wider-model"
    reference = state.reference("0005-fusion")
    assert reference is not None and reference.id == SWEEP  # runs only: against the leader
    rerun = L.ProposalRecord(
        experiment="0006-seeds", title="Seed check", hypothesis="noise", source="offline"
    )
    reference = rebuild_state([*_sweep(kept=True), rerun]).reference("0006-seeds")
    assert reference is not None and reference.id == SWEEP
    discarded = rebuild_state(_sweep(kept=False))
    assert discarded.best == "0001-wider-model" and NGRAM not in discarded.current
    reference = discarded.reference(SWEEP)
    assert reference is not None and reference.id == "0001-wider-model"


def test_the_notes_show_every_setting_of_a_sweep_and_which_one_counts(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    render_notes(workspace, rebuild_state(_sweep(kept=True)), "Which order?")
    page = (workspace.experiments_pages / f"{SWEEP}.md").read_text()
    assert "| run | setting | seed |" in page and "| `order=2` |" in page
    assert "| **`order=6`** | 2 | 1.1500 |" in page
    assert "The sweep stands for its best setting, `order=6`" in page
    assert "**better**, kept: later experiments are measured against it." in page
    readme = (workspace.notes / "README.md").read_text()
    assert "Sweep n-gram orders 2 to 6 (best: `order=6`)" in readme
    assert f"trains `{NGRAM}` with `order=6`" in readme
    assert (
        "`experiments/train.py`: [0001-wider-model](experiments/0001-wider-model.md) Wider model, bpb 1.2050 over 3 seeds"
        in readme
    )
    wide = (workspace.experiments_pages / "0001-wider-model.md").read_text()
    assert "| run | setting | seed |" in wide and "`lr=0.003`" in wide


def test_a_run_folder_in_a_setting_reads_as_its_name() -> None:
    records = make_records()
    fusion = "0003-fusion"
    records += [
        L.ProposalRecord(
            experiment=fusion, title="Fusion", hypothesis="h", entry="experiments/fusion.py"
        ),
        L.RunStartRecord(
            experiment=fusion,
            run="f0",
            seed=0,
            budget_s=120,
            overrides={"base_run": "/work/ws/.vibe/runs/0001-20261127-s0-0"},
        ),
    ]
    run = rebuild_state(records).experiments[fusion].runs["f0"]
    assert run.setting == "base_run=0001-20261127-s0-0"
    assert run.variant == ""  # the run folder it reads is its input, like its seed


def test_only_a_runs_folder_of_a_workspace_names_a_run() -> None:
    assert names_run("/work/ws/.vibe/runs/0001-20261127-s0-0")
    assert not names_run("/data/runs/x") and not names_run("runs/x") and not names_run("0.004")
    assert variant_overrides({"base_run": "/w/.vibe/runs/r", "heads": "ngram"}) == {
        "heads": "ngram"
    }


def test_a_sweep_with_one_seed_per_setting_is_only_indicative_until_its_best_gets_more() -> None:
    comparison = compare("bpb", [1.149], [1.20, 1.21, 1.205])
    assert comparison.verdict == "indicative" and "run more seeds" in comparison.reason
    assert compare("bpb", [1.149, 1.151], [1.20, 1.21, 1.205]).verdict == "better"
