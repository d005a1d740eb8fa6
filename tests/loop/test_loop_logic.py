"""The loop's logic, in seconds: what a turn starts with, what is applied, what is missing, when a
session stops, and undoing an interrupted proposal on a real git repository."""

from pathlib import Path

import pytest
from gitrepo import commit_all

from vibe_research.cli.init import init_workspace
from vibe_research.llm.planner import OfflinePlanner
from vibe_research.llm.schemas import Edit, Proposal, RunRequest
from vibe_research.lm.caches import tokenizer_problem
from vibe_research.lm.errors import UserError
from vibe_research.research import gitops
from vibe_research.research.judge.cache import JudgeCache
from vibe_research.research.judge.heuristic import HeuristicJudge
from vibe_research.research.loop.drift import (
    batch_name,
    described,
    drift,
    not_rerunnable,
    pairs_to_run,
    starts_beside,
)
from vibe_research.research.loop.env import Env
from vibe_research.research.loop.recovery import recover, save_pending
from vibe_research.research.loop.runs import missing_runs, score_sealed
from vibe_research.research.loop.session import stop_reason
from vibe_research.research.loop.turn import Request, begin_rerun, planned_runs, start_of
from vibe_research.research.notes.readme import readme_blocks
from vibe_research.research.propose.context import base_runs
from vibe_research.research.propose.edits import apply_edits
from vibe_research.research.settings import SessionSettings, Settings
from vibe_research.research.state import ledger as L
from vibe_research.research.state.experiments import compare_with_best, gain_split, rebuild_state
from vibe_research.research.workspace import Workspace
from vibe_research.runs.calibrate import Calibration
from vibe_research.runs.executor import LocalExecutor
from vibe_research.sandbox.policy import SandboxPolicy

BASELINE = "0000-baseline"
WIDER = "0001-wider"
FUSION = "0002-fusion"


def _proposal(
    exp: str, source: str = "offline", commit: str | None = "c1", **fields
) -> L.ProposalRecord:
    runs = [L.PlannedRun(seed=0), L.PlannedRun(seed=1)]
    return L.ProposalRecord(
        experiment=exp, title=exp, hypothesis="h", source=source, commit=commit, runs=runs, **fields
    )


def _measured(exp: str, run: str, seed: int, bpb: float) -> list[L.Record]:
    return [
        L.RunStartRecord(experiment=exp, run=run, seed=seed, budget_s=5),
        L.RunEndRecord(experiment=exp, run=run, outcome="ok"),
        L.EvaluationRecord(experiment=exp, run=run, bpb=bpb, perplexity=3.0, tokenizer="bytes"),
    ]


def _baseline() -> list[L.Record]:
    return [
        _proposal(BASELINE, source="baseline", commit="c0"),
        *_measured(BASELINE, "b0", 0, 1.30),
        *_measured(BASELINE, "b1", 1, 1.31),
        L.DecisionRecord(experiment=BASELINE, verdict="baseline", kept=True),
    ]


def test_a_turn_finishes_what_is_open_then_measures_a_baseline_then_does_what_was_asked() -> None:
    asked = Request(kind="rerun", experiment=BASELINE, extra_seeds=1)
    assert start_of(rebuild_state([]), asked) == "baseline"
    assert start_of(rebuild_state([]), Request(kind="manual", title="mine")) == "manual"
    assert start_of(rebuild_state(_baseline()), asked) == "rerun"
    assert start_of(rebuild_state(_baseline()), Request()) == "propose"
    opened = [*_baseline(), _proposal(WIDER)]
    assert start_of(rebuild_state(opened), Request(kind="manual", title="mine")) == "resume"
    failed = [
        _proposal(BASELINE, source="baseline"),
        L.DecisionRecord(experiment=BASELINE, verdict="failed", kept=False),
    ]
    assert (
        start_of(rebuild_state(failed), Request()) == "baseline"
    )  # a failed baseline is measured again


def test_whether_a_change_is_in_experiments_comes_from_the_ledger() -> None:
    records = [*_baseline(), _proposal(WIDER, commit="p1")]
    assert rebuild_state(records).experiments[WIDER].applied  # open: the loop put it in place
    records.append(L.DecisionRecord(experiment=WIDER, verdict="worse", kept=False, commit="r1"))
    wider = rebuild_state(records).experiments[WIDER]
    assert not wider.applied and wider.discard_commit == "r1" and wider.code_commit == "p1"
    records.append(
        _proposal(WIDER, commit="p1", restored="r2")
    )  # a rerun puts it back and reopens it
    wider = rebuild_state(records).experiments[WIDER]
    assert wider.open and wider.applied and wider.code_commit == "r2"
    assert wider.earlier_decisions and wider.decision is None
    records.append(L.DecisionRecord(experiment=WIDER, verdict="better", kept=True))
    wider = rebuild_state(records).experiments[WIDER]
    assert wider.applied and wider.decision.verdict == "better"
    assert not rebuild_state(records).experiments[BASELINE].applied  # the baseline changes nothing


def test_only_runs_without_a_finished_run_are_run_again() -> None:
    records = [*_baseline(), _proposal(WIDER), *_measured(WIDER, "w0", 0, 1.2)]
    records.append(L.RunStartRecord(experiment=WIDER, run="w1", seed=1, budget_s=5))
    assert missing_runs(rebuild_state(records).experiments[WIDER]) == [L.PlannedRun(seed=1)]
    records.append(L.RunEndRecord(experiment=WIDER, run="w1", outcome="interrupted"))
    assert missing_runs(rebuild_state(records).experiments[WIDER]) == [L.PlannedRun(seed=1)]
    records.append(L.RunEndRecord(experiment=WIDER, run="w1", outcome="crash"))
    assert missing_runs(rebuild_state(records).experiments[WIDER]) == []  # a crash is a result


def test_a_proposal_without_runs_gets_the_settings_seeds() -> None:
    bare = Proposal(
        title="Wider",
        hypothesis="h",
        rationale="r",
        expected_effect="e",
        risk="low",
        runs=[RunRequest(seeds=[5], overrides={"lr": 0.01}, entry="experiments/ngram.py")],
    )
    assert planned_runs(bare, [0, 1]) == (
        "experiments/ngram.py",
        [L.PlannedRun(seed=5, overrides={"lr": "0.01"})],
    )


def test_unattended_sessions_stop_for_each_condition_with_its_reason() -> None:
    limits = SessionSettings(max_hours=1, patience=3, max_failures=2)
    assert stop_reason(limits, 3, 3, 10, 0, 0) is None
    assert stop_reason(limits, 4, 3, 10, 0, 0) == "3 unattended turn(s) done"
    assert stop_reason(limits, 2, 3, 3601, 0, 0) == "the session's 1 h are up"
    assert stop_reason(limits, 2, 3, 10, 3, 0) == "no new best in 3 turns (patience 3)"
    assert (
        stop_reason(limits, 2, 3, 10, 0, 2) == "2 failed turns in a row (session.max_failures = 2)"
    )


def test_tokenizers_a_proposal_may_ask_for() -> None:
    assert tokenizer_problem("bpe:4096") is None and tokenizer_problem("gpt2") is None
    assert "larger than bpe:32768" in tokenizer_problem("bpe:1048576")
    assert "unknown tokenizer spec" in tokenizer_problem("sentencepiece")


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)

    def progress(self, specs: list) -> None:
        raise AssertionError("recovery runs nothing")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    workspace = init_workspace(tmp_path / "ws")
    return Env(
        workspace=workspace,
        settings=Settings(),
        executor=LocalExecutor(SandboxPolicy()),
        proposer=OfflinePlanner(),
        judge=HeuristicJudge(),
        judge_cache=JudgeCache(tmp_path / "judge"),
        ui=Said(),
    )


def _edits() -> list[Edit]:
    return [
        Edit(path="experiments/train.py", search='"n_head": 4,', replace='"n_head": 2,'),
        Edit(path="experiments/helper.py", search="", replace="X = 1\n"),
    ]


def test_an_interrupted_proposal_is_undone_and_the_researchers_work_kept(env: Env) -> None:
    root = env.root
    ngram_before = (root / "experiments" / "ngram.py").read_text()
    applied = apply_edits(
        root,
        [*_edits(), Edit(path="experiments/ngram.py", search='"order": 4,', replace='"order": 5,')],
    )
    save_pending(env, applied)
    # while the smoke run ran, the researcher edited a file the proposal wrote and made a new one
    (root / "experiments" / "helper.py").write_text("X = 1\n# mine\n")
    (root / "experiments" / "scratch.py").write_text("# my idea\n")
    recover(env)
    assert '"n_head": 4,' in (root / "experiments" / "train.py").read_text()
    assert (root / "experiments" / "ngram.py").read_text() == ngram_before
    assert (root / "experiments" / "helper.py").read_text() == "X = 1\n# mine\n"
    assert (root / "experiments" / "scratch.py").read_text() == "# my idea\n"
    assert any("experiments/helper.py changed after" in line for line in env.ui.lines)
    assert not (env.workspace.state / "pending-proposal.json").exists()


def test_an_unrecorded_proposal_commit_is_reverted_and_the_researchers_commit_kept(
    env: Env,
) -> None:
    root = env.root
    start = gitops.head(root)
    applied = apply_edits(root, _edits())
    save_pending(env, applied)
    proposal = gitops.commit_proposal(root, "0001-x", "X", "", applied.paths(root))
    (root / "notes" / "ideas.md").write_text("# my ideas\n")
    researcher = commit_all(root, "my ideas").head.commit.hexsha
    recover(env)
    assert '"n_head": 4,' in (root / "experiments" / "train.py").read_text()
    assert not (root / "experiments" / "helper.py").exists()
    assert (root / "notes" / "ideas.md").read_text() == "# my ideas\n"
    history = gitops.open_repo(root).git.log("--format=%H", f"{start}..HEAD").split()
    assert proposal in history and researcher in history and len(history) == 3
    assert gitops.proposal_commits_since(root, researcher) == []


def _calibrated(
    exp: str, run: str, seed: int, bpb: float, gflops: float, batch: str | None = None
) -> list[L.Record]:
    steps = round(gflops * 10)  # a faster machine trains more steps in the budget
    curve = [
        L.LossPoint(elapsed_s=s / 10, step=s, loss=3.0 - s / 1000 + bpb)
        for s in (1, steps // 3, 2 * steps // 3, steps)
    ]
    return [
        L.RunStartRecord(experiment=exp, run=run, seed=seed, budget_s=5, batch=batch),
        L.RunEndRecord(
            experiment=exp,
            run=run,
            outcome="ok",
            calibration=Calibration(gflops=gflops, threads=2),
            steps=steps,
            tokens=steps * 100,
            loss_curve=curve,
        ),
        L.EvaluationRecord(experiment=exp, run=run, bpb=bpb, perplexity=3.0, tokenizer="bytes"),
    ]


def test_sides_at_different_machine_speeds_are_flagged_and_compared_on_their_side_by_side_batch() -> (
    None
):
    records = [
        _proposal(BASELINE, source="baseline", commit="c0"),
        *_calibrated(BASELINE, "b0", 0, 1.30, 34.0),
        *_calibrated(BASELINE, "b1", 1, 1.31, 33.6),
        L.DecisionRecord(experiment=BASELINE, verdict="baseline", kept=True),
        _proposal(WIDER, commit="p1"),
        # the candidate ran beside a CPU hog: slower machine, fewer tokens, worse bpb
        *_calibrated(WIDER, "w0", 0, 1.36, 22.0),
        *_calibrated(WIDER, "w1", 1, 1.37, 23.5),
    ]
    state = rebuild_state(records)
    ratio = drift(state.experiments[WIDER], state.experiments[BASELINE], 0.05)
    assert drift(state.experiments[WIDER], state.experiments[BASELINE], 0.5) is None
    assert not_rerunnable(state.experiments[BASELINE], state.experiments[WIDER]) == ""
    assert ratio == pytest.approx(22.75 / 33.8, rel=1e-6)
    assert compare_with_best(state, WIDER, "bpb").verdict == "worse"
    batch = batch_name(WIDER)
    for seed in (0, 1):  # alternating, on a quiet machine again
        records += _calibrated(BASELINE, f"rb{seed}", seed, 1.305 + seed * 0.004, 34.1, batch)
        records += _calibrated(WIDER, f"rw{seed}", seed, 1.300 + seed * 0.005, 34.0, batch)
    state = rebuild_state(records)
    paired = compare_with_best(state, WIDER, "bpb", batch=batch)
    assert paired.verdict == "inconclusive" and paired.bpb.n_candidate == paired.bpb.n_best == 2
    assert state.experiments[WIDER].batches == {batch}
    # where the gain came from splits the difference the verdict states, from the same runs
    split = gain_split(state, WIDER, batch)
    assert split.delta_bpb == pytest.approx(paired.bpb.diff)
    assert split.tokens_candidate == pytest.approx(34.0 * 10 * 100, rel=0.01)
    assert gain_split(state, WIDER).delta_bpb == pytest.approx(
        (1.36 + 1.37 + 1.300 + 1.305) / 4 - (1.30 + 1.31 + 1.305 + 1.309) / 4
    )


def test_fusion_bases_are_the_newest_runs_whose_folders_are_on_this_machine(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)
    state = rebuild_state(_baseline())
    assert base_runs(workspace, "experiments/train.py", state) == []  # a fresh clone: no folders
    (workspace.runs / "b0").mkdir(parents=True)
    assert base_runs(workspace, "experiments/train.py", state) == [str(workspace.runs / "b0")]
    (workspace.runs / "b1").mkdir()
    assert base_runs(workspace, "experiments/train.py", state) == [
        str(workspace.runs / "b1"),  # newest first, although b0 has the lower bpb: no luck picked
        str(workspace.runs / "b0"),
    ]


def _fusion(base: Path, run: str, seed: int, bpb: float) -> list[L.Record]:
    overrides = {"base_run": str(base)}
    return [
        L.RunStartRecord(experiment=FUSION, run=run, seed=seed, budget_s=5, overrides=overrides),
        L.RunEndRecord(experiment=FUSION, run=run, outcome="ok"),
        L.EvaluationRecord(experiment=FUSION, run=run, bpb=bpb, perplexity=3.0, tokenizer="bytes"),
    ]


def test_fusions_of_the_bases_seeds_are_seeds_of_one_setting_and_more_read_unread_bases(
    env: Env,
) -> None:
    runs = env.workspace.runs
    for name in ("b1", "b2", "b3"):
        (runs / name).mkdir(parents=True)  # b0's folder is not on this machine
    baseline = _baseline()
    for record in [
        *baseline[:-1],
        *_measured(BASELINE, "b2", 2, 1.29),
        *_measured(BASELINE, "b3", 3, 1.32),
        baseline[-1],
        L.ProposalRecord(
            experiment=FUSION,
            title="Fusion",
            hypothesis="h",
            entry="experiments/fusion.py",
            runs=[
                L.PlannedRun(seed=0, overrides={"base_run": str(runs / "b3")}),
                L.PlannedRun(seed=1, overrides={"base_run": str(runs / "b2")}),
            ],
        ),
        *_fusion(runs / "b3", "f0", 0, 1.20),
        *_fusion(runs / "b2", "f1", 1, 1.21),
        L.DecisionRecord(experiment=FUSION, verdict="inconclusive", kept=False, against=BASELINE),
    ]:
        env.record(record)
    fusion = env.state().experiments[FUSION]
    assert not fusion.is_sweep and list(fusion.variants) == [""]
    assert fusion.bpbs == [1.20, 1.21]  # both seeds stand for it, not the luckier base alone
    assert fusion.runs["f0"].setting == "base_run=b3"  # what each read still shows
    # the baseline trains another entry: there is no baseline run to pair with a fused run
    assert not_rerunnable(env.state().experiments[BASELINE], fusion) == (
        f"{FUSION} runs experiments/fusion.py and {BASELINE} experiments/train.py, so there is "
        "no run of the reference to pair with each of its runs"
    )
    # each fusion against the base run it read: a paired test, not all bases' spread
    comparison = compare_with_best(env.state(), FUSION, "bpb")
    assert comparison.bpb.test == "paired t-test" and comparison.bpb.n_candidate == 2
    assert comparison.bpb.diff == pytest.approx(((1.20 - 1.32) + (1.21 - 1.29)) / 2)
    begin_rerun(env, Request(kind="rerun", experiment=FUSION, extra_seeds=3))
    planned = env.state().experiments[FUSION].proposal.runs[2:]
    assert planned == [L.PlannedRun(seed=2, overrides={"base_run": str(runs / "b1")})]
    assert "only 1 unread base runs here" in env.ui.lines[-2]
    for record in _fusion(runs / "b1", "f2", 2, 1.19):
        env.record(record)
    with pytest.raises(UserError, match="has read every measured run of its base"):
        begin_rerun(env, Request(kind="rerun", experiment=FUSION, extra_seeds=1))


def test_a_half_run_side_by_side_batch_is_completed_pair_by_pair_and_described() -> None:
    batch = batch_name(WIDER)
    before = [
        _proposal(BASELINE, source="baseline", commit="c0"),
        *_calibrated(BASELINE, "b0", 0, 1.30, 34.0),
        *_calibrated(BASELINE, "b1", 1, 1.31, 34.0),
        L.DecisionRecord(experiment=BASELINE, verdict="baseline", kept=True),
        _proposal(WIDER, commit="p1"),
    ]
    # the machine was at half speed when WIDER began, so its runs are the batch from the start;
    # the turn was stopped during the candidate's first run
    stopped = [
        *_calibrated(BASELINE, "rb0", 0, 1.40, 17.0, batch),
        L.RunStartRecord(experiment=WIDER, run="rw0", seed=0, budget_s=5, batch=batch),
        L.RunEndRecord(experiment=WIDER, run="rw0", outcome="interrupted"),
    ]
    state = rebuild_state(before + stopped)
    planned = [L.PlannedRun(seed=0), L.PlannedRun(seed=1)]
    todo = pairs_to_run(state.experiments[WIDER], state.experiments[BASELINE], planned)
    assert [(side.id, run.seed) for side, run in todo] == [(WIDER, 0), (BASELINE, 1), (WIDER, 1)]
    assert missing_runs(state.experiments[WIDER]) == planned
    resumed = [
        *_calibrated(WIDER, "rw0b", 0, 1.38, 17.2, batch),
        *_calibrated(BASELINE, "rb1", 1, 1.41, 16.8, batch),
        *_calibrated(WIDER, "rw1", 1, 1.39, 17.0, batch),
    ]
    state = rebuild_state(before + stopped + resumed)
    assert pairs_to_run(state.experiments[WIDER], state.experiments[BASELINE], planned) == []
    assert missing_runs(state.experiments[WIDER]) == []
    said = described(state, WIDER)
    assert "side by side from the start" in said and "(34.0 GFLOP/s" in said
    assert "calibration 17.1 against 16.9 GFLOP/s" in said
    # runs of its own first, at half speed, then the batch: the page says both ran again
    alone = [*_calibrated(WIDER, "w0", 0, 1.45, 17.0), *_calibrated(WIDER, "w1", 1, 1.46, 17.0)]
    said = described(rebuild_state(before + alone + stopped + resumed), WIDER)
    assert said.startswith("its runs ran at 50% of the machine speed of 0000-baseline's")
    assert "run again side by side" in said


def test_a_side_by_side_batch_compares_only_the_seeds_both_sides_measured() -> None:
    """The candidate's seed 0 was rejected: the reference's seed 0, run under the same machine
    conditions, leaves the comparison with it, so neither side keeps a seed the other lacks."""
    batch = batch_name(WIDER)
    records = [
        _proposal(BASELINE, source="baseline", commit="c0"),
        *_calibrated(BASELINE, "b0", 0, 1.30, 34.0),
        L.DecisionRecord(experiment=BASELINE, verdict="baseline", kept=True),
        _proposal(WIDER, commit="p1"),
        *_calibrated(BASELINE, "rb0", 0, 1.50, 12.0, batch),  # a slow first pair
        L.RunStartRecord(experiment=WIDER, run="rw0", seed=0, budget_s=5, batch=batch),
        L.RunEndRecord(experiment=WIDER, run="rw0", outcome="bad_model", reason="not causal"),
    ]
    for seed in (1, 2):
        records += _calibrated(BASELINE, f"rb{seed}", seed, 1.30 + seed * 0.002, 34.0, batch)
        records += _calibrated(WIDER, f"rw{seed}", seed, 1.32 + seed * 0.002, 34.0, batch)
    state = rebuild_state(records)
    paired = compare_with_best(state, WIDER, "bpb", batch=batch)
    assert paired.bpb.n_candidate == paired.bpb.n_best == 2
    assert paired.bpb.diff == pytest.approx(0.02) and paired.verdict == "worse"
    assert gain_split(state, WIDER, batch).delta_bpb == pytest.approx(0.02)
    assert compare_with_best(state, WIDER, "bpb").bpb.n_best == 4  # unbatched: every run


def test_the_sealed_split_skips_a_best_run_whose_folder_is_not_on_this_machine(env: Env) -> None:
    """A fresh clone's ledger names the best's runs; their folders (models) stayed behind."""
    for record in _baseline():
        env.record(record)
    score_sealed(env, BASELINE)
    assert env.ui.lines == [
        f"[{BASELINE}] no sealed test score for b0, b1: no run folder on this machine "
        "(trained elsewhere, or the folder was removed)"
    ]
    assert not env.state().experiments[BASELINE].test_bpbs


def test_a_best_run_the_sealed_split_rejects_is_recorded_shown_and_not_asked_again(
    env: Env,
) -> None:
    """Its folder is here but holds no model: the sandboxed evaluation on test rejects it."""
    for record in _baseline():
        env.record(record)
    for run in ("b0", "b1"):
        (env.workspace.runs / run).mkdir(parents=True)
    score_sealed(env, BASELINE)
    rejected = env.state().experiments[BASELINE].test_rejected
    assert [r.run for r in rejected] == ["b0", "b1"] and all(r.reason for r in rejected)
    said = " ".join(env.ui.lines)
    assert all(f"{r.run}: no sealed test score ({r.outcome}: " in said for r in rejected)
    assert (
        env.ui.lines[-1]
        == f"[{BASELINE}] the best: 0 of 2 run(s) scored once on the sealed test split"
    )
    lines = len(env.ui.lines)
    score_sealed(env, BASELINE)  # asked once: no retry until a flaky model passes
    assert len(env.ui.lines) == lines
    best = "\n".join(readme_blocks(env.state(), "question", 0.95).values())
    assert "sealed test split (scored once" in best
    assert "no score; 2 of its 2 runs not scored: b0 (" in best


def test_a_candidate_starts_beside_its_reference_only_when_the_machine_is_at_another_speed_now(
    env: Env,
) -> None:
    env.record(_proposal(BASELINE, source="baseline", commit="c0"))
    for record in _calibrated(BASELINE, "b0", 0, 1.30, 1e6):  # no machine is this fast
        env.record(record)
    env.record(L.DecisionRecord(experiment=BASELINE, verdict="baseline", kept=True))
    env.record(_proposal(WIDER, commit="p1"))
    state = env.state()
    wider, baseline = state.experiments[WIDER], state.experiments[BASELINE]
    planned = [L.PlannedRun(seed=0), L.PlannedRun(seed=1)]
    assert starts_beside(env, wider, baseline, planned)  # measured now, in the sandbox
    sweep = [L.PlannedRun(seed=0, overrides={"order": str(n)}) for n in (3, 4)]
    assert not starts_beside(env, wider, baseline, sweep)
    assert not starts_beside(env, wider, None, planned)
    env.settings.research.drift = 1e9  # any speed is close enough
    assert not starts_beside(env, wider, baseline, planned)
