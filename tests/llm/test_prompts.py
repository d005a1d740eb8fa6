"""Prompts built from the notes and experiments/ on disk, counted with the GPT-2 BPE and fitted to a budget."""

import logging
from pathlib import Path

import pytest

from vibe_research.llm import tokens
from vibe_research.llm.schemas import Suggestion, Tried
from vibe_research.llm.tokens import count_message_tokens, count_tokens
from vibe_research.lm.errors import UserError
from vibe_research.research.propose.context import (
    proposal_context,
    read_steering,
    suggestion_context,
)
from vibe_research.research.settings import Settings
from vibe_research.research.workspace import Workspace

TEMPLATE = (
    Path(__file__).resolve().parents[2] / "vibe_research" / "templates" / "experiments" / "train.py"
)
QUESTION = "Which five-minute TinyStories model writes the best stories?"


@pytest.fixture(autouse=True)
def _real_tokens(gpt2_ranks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBE_GPT2_RANKS", str(gpt2_ranks))


def _workspace(
    root: Path, pages: int = 5, page_words: int = 50, train: str | None = None
) -> Workspace:
    (root / "experiments").mkdir()
    (root / "experiments" / "train.py").write_text(
        train if train is not None else TEMPLATE.read_text()
    )
    (root / "experiments" / "ngram.py").write_text(
        'CONFIG = {\n    "order": 4,  # n-gram order\n}\n'
    )
    (root / "notes" / "experiments").mkdir(parents=True)
    (root / "notes" / "README.md").write_text(
        f"# Research notes\n\nQuestion: {QUESTION}\n\nBest: 1.21 bpb (0003-wider).\n"
    )
    for number in range(1, pages + 1):
        body = " ".join(["loss fell steadily"] * page_words)
        (root / "notes" / "experiments" / f"{number:04d}-step.md").write_text(
            f"# Experiment {number:04d}\n\n{body}\n"
        )
    return Workspace(root)


def _settings(**llm: object) -> Settings:
    return Settings.model_validate({"research": {"question": QUESTION}, "llm": llm})


HISTORY = [
    Tried(title="Baseline", verdict="baseline"),
    Tried(
        title="Wider: n_embd 256", verdict="better", move="width/up:n_embd=256", delta_bpb=-0.031
    ),
    Tried(
        title="Muon",
        verdict="worse",
        move="opt/muon:optimizer=muon",
        delta_bpb=0.012,
        detail="judge 5.1 vs 6.0, n=3",
    ),
]


def test_proposal_prompt_holds_notes_recent_pages_tried_files_and_pick(tmp_path):
    workspace = _workspace(tmp_path)
    pick = Suggestion(
        title="Distill from a 4-gram",
        idea="distill_steps 200",
        why="seed's best",
        expected_effect="bpb -0.03",
        cost_minutes=15,
        risk="medium",
    )

    context = proposal_context(workspace, _settings(), HISTORY, pick=pick)

    system, user = (m["content"] for m in context.messages)
    assert QUESTION in system and "300 seconds" in system
    assert "Best: 1.21 bpb (0003-wider)." in user
    assert (
        "# Experiment 0005" in user
        and "# Experiment 0003" in user
        and "# Experiment 0002" not in user
    )
    assert "- Wider: n_embd 256 [width/up:n_embd=256]: better, bpb -0.0310\n" in user
    assert "- Muon [opt/muon:optimizer=muon]: worse, bpb +0.0120; judge 5.1 vs 6.0, n=3" in user
    assert '    "n_layer": 4,  # transformer blocks' in user and "## experiments/ngram.py" in user
    assert user.index("## experiments/train.py") < user.index("## experiments/ngram.py")
    assert (
        "**Distill from a 4-gram**: distill_steps 200" in user
        and "three seeds of one change (0, 1, 2)" in user
    )
    assert set(context.files) == {"experiments/train.py", "experiments/ngram.py"}
    assert context.history == HISTORY and context.pick == pick and context.seeds == [0, 1, 2]


def test_own_idea_is_quoted_in_the_researchers_words(tmp_path):
    context = proposal_context(
        _workspace(tmp_path), _settings(), HISTORY, idea="Try a cosine schedule instead of linear"
    )
    assert "> Try a cosine schedule instead of linear" in context.messages[1]["content"]


def test_suggestion_prompt_asks_for_next_steps_with_costs(tmp_path):
    settings = Settings.model_validate({"train": {"budget_s": 120, "runs_per_proposal": 4}})
    context = suggestion_context(
        _workspace(tmp_path), settings, HISTORY, base_runs=[".vibe/runs/0002-s0"]
    )
    user = context.messages[1]["content"]
    assert "two or three next" in user and "about 2" in user and "minutes" in user
    assert (
        context.base_runs == [".vibe/runs/0002-s0"]
        and context.seeds == [0, 1, 2, 3]
        and context.budget_s == 120
    )


def test_prompt_is_cut_to_the_token_budget_oldest_first(tmp_path):
    many = [
        Tried(title=f"Experiment number {i}", verdict="worse", move=f"x/{i}:k={i}", delta_bpb=0.01)
        for i in range(300)
    ]
    workspace = _workspace(
        tmp_path, pages=5, page_words=400, train='CONFIG = {\n    "lr": 0.002,  # peak\n}\n'
    )

    context = proposal_context(workspace, _settings(prompt_token_budget=2_500), many)

    user = context.messages[1]["content"]
    assert count_message_tokens(context.messages) <= 2_500
    assert "older experiment pages left out to fit the token budget" in user
    assert "older lines left out to fit the token budget" in user
    assert "Experiment number 299" in user and "- Experiment number 0 " not in user
    assert '"lr": 0.002' in user  # the entry is never cut
    assert len(context.history) == 300  # the planner still sees everything


def test_budget_too_small_for_the_core_is_a_clear_error(tmp_path):
    workspace = _workspace(tmp_path, pages=0)
    with pytest.raises(
        UserError,
        match=r"needs \d+ tokens even cut to its core, over llm.prompt_token_budget = 1000",
    ):
        proposal_context(workspace, _settings(prompt_token_budget=1_000), HISTORY)


def test_gpt2_counts_and_the_bytes_fallback(monkeypatch, caplog):
    assert count_tokens("Once upon a time") == 4  # [7454, 2402, 257, 640]
    monkeypatch.delenv("VIBE_GPT2_RANKS")
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    tokens._warn_estimating.cache_clear()
    with caplog.at_level(logging.WARNING, logger="vibe_research.llm.tokens"):
        assert count_tokens("Once upon a time") == 4  # 16 bytes / 4
        assert count_tokens("Once upon a time, there") == 6  # 23 bytes / 4, rounded up
    assert len([r for r in caplog.records if "bytes / 4" in r.getMessage()]) == 1


def test_a_wrong_ranks_file_is_refused(tmp_path, monkeypatch):
    wrong = tmp_path / "r50k_base.tiktoken"
    wrong.write_text("aGVsbG8= 0\n")
    monkeypatch.setenv("VIBE_GPT2_RANKS", str(wrong))
    with pytest.raises(UserError, match="not the GPT-2 r50k_base ranks"):
        count_tokens("hello")


def test_the_steering_section_goes_first_and_its_help_comment_does_not(tmp_path):
    workspace = _workspace(tmp_path)
    readme = workspace.notes / "README.md"
    readme.write_text(
        readme.read_text()
        + "\n## Steering\n\n<!-- help for the researcher -->\nStay on n-grams this week.\n"
        + "avoid: optimizer\n\n## Open questions\n\nWhy is 6 worse than 5?\n"
    )
    steering = read_steering(workspace)
    assert steering == "Stay on n-grams this week.\navoid: optimizer"
    context = proposal_context(workspace, _settings(), HISTORY, steering=steering)
    system = context.messages[0]["content"]
    assert system.startswith("The researcher steers this research.")
    assert system.index("Stay on n-grams this week.") < system.index("You are a careful")
    assert context.steering == steering and "help for the researcher" not in system
    readme.write_text("# Research notes\n\nno steering here\n")
    assert read_steering(workspace) == ""
