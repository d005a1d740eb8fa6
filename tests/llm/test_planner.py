"""The offline planner against the real template trainer and a growing history."""

import ast
import importlib.util
from pathlib import Path

import pytest
from gitrepo import commit_all

from vibe_research.llm.config_block import read_config
from vibe_research.llm.context import ResearchContext
from vibe_research.llm.moves import measured_settings
from vibe_research.llm.planner import OfflinePlanner, rank
from vibe_research.llm.schemas import Suggestion, Tried
from vibe_research.lm.errors import UserError
from vibe_research.research.propose.edits import apply_edits

TEMPLATES = Path(__file__).resolve().parents[2] / "vibe_research" / "templates" / "experiments"
TEMPLATE = TEMPLATES / "train.py"
FUSION = 'CONFIG = {\n    "base_run": "",  # run folder of the transformer to fuse\n    "weight": 0.3,  # n-gram share\n}\n'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "train.py").write_text(TEMPLATE.read_text())
    (tmp_path / "experiments" / "ngram.py").write_text((TEMPLATES / "ngram.py").read_text())
    (tmp_path / "experiments" / "fusion.py").write_text(FUSION)
    commit_all(tmp_path)
    return tmp_path


def _context(root: Path, history: list[Tried], **fields: object) -> ResearchContext:
    files = {f"experiments/{p.name}": p.read_text() for p in (root / "experiments").glob("*.py")}
    return ResearchContext(messages=[], files=files, history=history, **fields)


def _pick(move: str) -> Suggestion:
    """The menu's suggestion of `move`, as the researcher picks it."""
    return Suggestion(
        title=move, idea="", why="w", expected_effect="e", cost_minutes=15, risk="low", move=move
    )


def test_ten_rounds_against_a_growing_history_never_repeat(root):
    """Like the loop: apply, measure (here: a fixed rule), keep the better changes, revert the rest."""
    planner, history, seen = OfflinePlanner(), [], set()
    for round_number in range(10):
        proposal = planner.propose(_context(root, history))
        reached = measured_settings(proposal.move or "")[0]
        assert proposal.move and reached not in seen, (
            f"round {round_number} repeats {proposal.move}"
        )
        seen.update(measured_settings(proposal.move))
        applied = apply_edits(root, proposal.edits)
        delta = -0.01 if "/up" in proposal.move or "distill" in proposal.move else 0.004
        if delta > 0:
            applied.revert()
        else:
            commit_all(root, f"keep {proposal.move}")
        history.append(
            Tried(
                title=proposal.title,
                verdict="better" if delta < 0 else "worse",
                move=proposal.move,
                delta_bpb=delta,
            )
        )
    assert len({item.move for item in history}) == 10
    assert read_config((root / "experiments" / "train.py").read_text())["distill_steps"].value > 0


def test_every_move_on_the_real_trainer_passes_its_own_config_check(root):
    """The planner's edits are exact on the template and give values its check_config accepts."""
    spec = importlib.util.spec_from_file_location("template_train", TEMPLATE)
    trainer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainer)
    moves = [move for move in rank(_context(root, [])) if move.edits]
    assert len(moves) > 25
    for move in moves:
        applied = apply_edits(root, move.edits)
        config = _literal_config((root / "experiments" / "train.py").read_text())
        trainer.check_config(config)
        name, value = move.identity.split("=")
        assert str(config[name]).lower() == value.lower() or config[name] == float(value), move.key
        applied.revert()


def _literal_config(source: str) -> dict:
    assign = next(
        n
        for n in ast.parse(source).body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "CONFIG"
    )
    return ast.literal_eval(assign.value)


def test_first_proposal_edits_one_config_line_of_the_template(root):
    proposal = OfflinePlanner().propose(_context(root, []))
    (edit,) = proposal.edits
    assert edit.path == "experiments/train.py"
    assert (
        edit.search in TEMPLATE.read_text()
        and edit.search.startswith('    "')
        and "#" in edit.replace
    )
    assert proposal.runs[0].seeds == [0, 1, 2] and proposal.runs[0].entry is None


def test_gains_seen_so_far_reorder_the_moves(root):
    train = (
        root / "experiments" / "train.py"
    )  # the moves below start from lr 0.002, whatever the template's default
    train.write_text(train.read_text().replace('"lr": 4e-3,', '"lr": 2e-3,'))
    before = [move.key for move in rank(_context(root, []))]
    history = [
        Tried(title="Raise lr", verdict="better", move="lr/up:lr=0.001->0.002", delta_bpb=-0.05)
    ]
    after = [move.key for move in rank(_context(root, history))]
    assert before[0] != "lr/up:lr=0.002->0.004" and after[0] == "lr/up:lr=0.002->0.004"
    assert "lr/down:lr=0.002->0.001" in before and "lr/down:lr=0.002->0.001" not in after
    shallower = [
        Tried(title="Fewer layers", verdict="worse", move="depth/down:n_layer=5->4", delta_bpb=0.05)
    ]
    penalised = [move.key for move in rank(_context(root, shallower))]
    assert penalised.index("depth/down:n_layer=4->3") > before.index("depth/down:n_layer=4->3")
    assert penalised[-1] == "depth/down:n_layer=4->3"


def test_a_setting_reached_from_either_direction_is_not_proposed_again(root):
    history = [
        Tried(title="lr 0.004", verdict="worse", move="lr/down:lr=0.008->0.004", delta_bpb=0.01)
    ]
    assert "lr=0.004" not in {move.identity for move in rank(_context(root, history))}


def test_the_setting_a_kept_move_left_is_not_proposed_again(root):
    train = root / "experiments" / "train.py"
    train.write_text(train.read_text().replace('"n_embd": 192,', '"n_embd": 256,'))
    history = [
        Tried(title="Wider", verdict="better", move="width/up:n_embd=192->256", delta_bpb=-0.02)
    ]
    keys = {move.key for move in rank(_context(root, history))}
    assert "width/up:n_embd=256->336" in keys and not any(
        key.startswith("width/down") for key in keys
    )


def test_pick_and_own_idea_are_honoured(root):
    pick = _pick("act/swiglu:mlp=gelu->swiglu")
    assert (
        OfflinePlanner().propose(_context(root, [], pick=pick)).move
        == "act/swiglu:mlp=gelu->swiglu"
    )

    by_words = OfflinePlanner().propose(_context(root, [], idea="let's try a deeper model"))
    assert by_words.move is not None and by_words.move.startswith("depth/")
    assert "Chosen for the researcher's idea" in by_words.rationale

    # "teacher" also names distillation, which ranks higher; the sweep names more of the words
    sweep = OfflinePlanner().propose(
        _context(
            root, [], idea="sweep the n-gram orders: which Kneser-Ney order is the best teacher?"
        )
    )
    assert sweep.move is not None and sweep.move.startswith("ngram/sweep")

    unknown = OfflinePlanner().propose(_context(root, [], idea="use a mixture of experts"))
    assert unknown.move == rank(_context(root, []))[0].key
    assert "no move for the idea" in unknown.rationale


def test_suggestions_are_the_top_moves_with_costs(root):
    suggestions = OfflinePlanner().suggest(_context(root, [], budget_s=120, seeds=[0, 1, 2, 3]))
    ranked = rank(_context(root, []))
    assert [item.move for item in suggestions.items] == [move.key for move in ranked[:3]]
    assert all(item.cost_minutes == 8.0 for item in suggestions.items)


def test_width_moves_keep_heads_dividing_the_width(root):
    moves = {move.key for move in rank(_context(root, []))}
    assert {
        "width/up:n_embd=192->256",
        "width/down:n_embd=192->144",
    } <= moves  # 192 * 4/3 and 192 * 3/4, multiples of 16


def test_a_zero_knob_starts_at_its_first_value_and_only_goes_up(root):
    train = root / "experiments" / "train.py"
    train.write_text(train.read_text().replace('"warmup_steps": 50,', '"warmup_steps": 0,'))
    warmup = [move.key for move in rank(_context(root, [])) if move.family == "warmup"]
    assert warmup == ["warmup/up:warmup_steps=0->100"]


def test_choices_come_from_the_config_comment(root):
    config = read_config(TEMPLATE.read_text())
    assert config["mlp"].choices() == ["gelu", "swiglu", "relu2"]
    keys = {move.key for move in rank(_context(root, []))}
    assert {
        "act/swiglu:mlp=gelu->swiglu",
        "act/relu2:mlp=gelu->relu2",
        "pos/learned:positions=rope->learned",
    } <= keys
    vocab = {move.key: move for move in rank(_context(root, []))}[
        "vocab/bpe-2048:tokenizer=bpe:4096->bpe:2048"
    ]
    assert (vocab.variant, vocab.identity) == ("vocab/bpe-2048", "tokenizer=bpe:2048")


def test_ngram_sweep_and_fusion_are_run_only_moves(root):
    bases = [".vibe/runs/0003-s0", ".vibe/runs/0003-s1", ".vibe/runs/0003-s2"]
    moves = {move.key: move for move in rank(_context(root, [], base_runs=bases))}
    sweep = moves["ngram/sweep:ngram.order=2..6"]
    assert sweep.edits == () and [run.overrides["order"] for run in sweep.runs] == [2, 3, 4, 5, 6]
    assert {run.entry for run in sweep.runs} == {"experiments/ngram.py"}
    fusion = moves["fusion/best:fusion.base_run=0003-s0,0003-s1,0003-s2"]
    # one fusion per seed of the base, so the fusion is compared over seeds
    assert [(run.seeds, run.overrides["base_run"]) for run in fusion.runs] == [
        ([0], bases[0]),
        ([1], bases[1]),
        ([2], bases[2]),
    ]
    assert not any(key.startswith("fusion/") for key in {m.key for m in rank(_context(root, []))})


def test_a_picked_fusion_survives_its_base_gaining_runs(root):
    """Picked over the best's 3 runs; before the turn proposes, a drift rerun gave the best 3 more
    (so the move's key changed): the turn still runs the fusion, over the runs there are now."""
    three = [".vibe/runs/0000-s0", ".vibe/runs/0000-s1", ".vibe/runs/0000-s2"]
    offered = {m.key: m for m in rank(_context(root, [], base_runs=three))}
    pick = _pick("fusion/best:fusion.base_run=0000-s0,0000-s1,0000-s2")
    assert pick.move in offered
    six = [*three, ".vibe/runs/0000-b0", ".vibe/runs/0000-b1", ".vibe/runs/0000-b2"]
    proposal = OfflinePlanner().propose(_context(root, [], pick=pick, base_runs=six))
    assert proposal.move == "fusion/best:fusion.base_run=" + ",".join(
        sorted(Path(run).name for run in six)
    )


def test_distillation_knobs_open_once_distillation_is_on(root):
    assert not any(move.family == "alpha" for move in rank(_context(root, [])))
    train = root / "experiments" / "train.py"
    train.write_text(train.read_text().replace('"distill_steps": 0,', '"distill_steps": 200,'))
    families = {move.family for move in rank(_context(root, []))}
    assert {"alpha", "teacher"} <= families


def test_inconclusive_result_ranks_a_seed_check_first(root):
    history = [
        Tried(
            title="Raise lr", verdict="inconclusive", move="lr/up:lr=0.002->0.004", delta_bpb=-0.002
        )
    ]
    assert rank(_context(root, history))[0].family == "seeds"


def test_exhausted_catalogue_is_a_clear_error(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "train.py").write_text(
        'CONFIG = {\n    "tie_embeddings": True,  # share\n}\n'
    )
    context = _context(tmp_path, [])
    history = [
        Tried(title=m.title, verdict="worse", move=m.key, delta_bpb=0.01) for m in rank(context)
    ]
    with pytest.raises(UserError, match="tried every move"):
        OfflinePlanner().propose(_context(tmp_path, history))


def test_a_knob_left_to_auto_is_not_switched_to_what_auto_already_picks(root):
    keys = {move.key for move in rank(_context(root, []))}
    assert not any(key.startswith(("dtype/", "compile/")) for key in keys)
    train = root / "experiments" / "train.py"
    train.write_text(train.read_text().replace('"dtype": "auto",', '"dtype": "fp32",'))
    assert any(
        key.startswith("dtype/bf16") for key in (move.key for move in rank(_context(root, [])))
    )


def test_a_seed_check_promises_no_gain(root):
    history = [
        Tried(
            title="Wider", verdict="inconclusive", move="width/up:n_embd=192->256", delta_bpb=0.04
        )
    ]
    suggestions = OfflinePlanner().suggest(_context(root, history))
    check = next(item for item in suggestions.items if item.move and item.move.startswith("seeds/"))
    assert check.expected_effect.startswith("no change in bpb")


def test_a_move_that_failed_once_may_come_back_but_not_after_a_second_failure(root):
    fusion = next(
        move
        for move in rank(
            _context(root, [], base_runs=["/ws/.vibe/runs/0000-s0", "/ws/.vibe/runs/0000-s1"])
        )
        if move.family == "fusion"
    )
    failed = Tried(title=fusion.title, verdict="failed", move=fusion.key)
    assert fusion.key in {
        move.key
        for move in rank(
            _context(root, [failed], base_runs=["/ws/.vibe/runs/0000-s0", "/ws/.vibe/runs/0000-s1"])
        )
    }
    assert fusion.key not in {
        move.key
        for move in rank(
            _context(
                root,
                [failed, failed],
                base_runs=["/ws/.vibe/runs/0000-s0", "/ws/.vibe/runs/0000-s1"],
            )
        )
    }
    # the researcher asking for it by name tries it again
    again = OfflinePlanner().propose(
        _context(
            root,
            [failed, failed],
            base_runs=["/ws/.vibe/runs/0000-s0", "/ws/.vibe/runs/0000-s1"],
            idea="shallow fusion",
        )
    )
    assert again.move == fusion.key and "tried again" in again.rationale


def test_the_researchers_steering_removes_prefers_and_budgets_moves(root):
    plain = [move.key for move in rank(_context(root, []))]
    assert any(key.startswith("opt/") for key in plain) and any(
        key.startswith("depth/") for key in plain
    )
    steered = rank(
        _context(root, [], steering="Keep it cheap.\navoid: optimizer, depth\nprefer: n-gram\n")
    )
    assert not any(move.family in ("opt", "depth") for move in steered)
    assert steered[0].key == "ngram/sweep:ngram.order=2..6"
    # every run counts its whole budget: five 300 s n-gram runs are 25 minutes, over 20
    budgeted = rank(_context(root, [], steering="budget: 20 min"))
    assert budgeted and not any(move.family == "ngram" for move in budgeted)
    assert all(sum(len(r.seeds) for r in move.runs) * 300 / 60 <= 20 for move in budgeted)
    assert OfflinePlanner().propose(_context(root, [], steering="prefer: fusion, n-gram")).move == (
        "ngram/sweep:ngram.order=2..6"
    )
