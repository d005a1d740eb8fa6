"""Propose, apply, smoke-run, and give the exact error back once: through real HTTP and real files."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitrepo import commit_all
from openai_server import ScriptedOpenAIServer

from vibe_research.llm.client import LLMClient
from vibe_research.llm.planner import OfflinePlanner
from vibe_research.llm.proposer import LLMProposer
from vibe_research.llm.schemas import Proposal
from vibe_research.llm.settings import LLMSettings
from vibe_research.research.propose.apply import propose_and_apply
from vibe_research.research.propose.context import proposal_context
from vibe_research.research.propose.edits import AppliedEdits
from vibe_research.research.settings import Settings
from vibe_research.research.workspace import Workspace

TRAIN = '''"""A tiny experiment: checks its CONFIG the way the real trainer does, then reports."""

import json

CONFIG = {
    "n_layer": 3,  # transformer blocks
    "lr": 2e-3,  # peak learning rate
    "mlp": "gelu",  # gelu | swiglu | relu2
}


def main():
    if CONFIG["n_layer"] < 1:
        raise SystemExit("n_layer must be at least 1")
    if CONFIG["mlp"] not in {"gelu", "swiglu", "relu2"}:
        raise ValueError(f"unknown mlp {CONFIG['mlp']!r}")
    print(json.dumps({"event": "done", "steps": 3}))


if __name__ == "__main__":
    main()
'''


def _proposal(*edits: tuple[str, str, str], title: str = "Raise the learning rate") -> dict:
    return {
        "title": title,
        "hypothesis": "a higher peak learning rate converges further in five minutes",
        "rationale": "the loss was still falling fast at the deadline",
        "expected_effect": "bpb -0.01",
        "risk": "low",
        "edits": [{"path": p, "search": s, "replace": r} for p, s, r in edits],
        "runs": [{"seeds": [0, 1, 2]}],
    }


GOOD = _proposal(("experiments/train.py", '"lr": 2e-3,', '"lr": 4e-3,'))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "train.py").write_text(TRAIN)
    (tmp_path / "notes" / "experiments").mkdir(parents=True)
    (tmp_path / "notes" / "README.md").write_text("# Research notes\n\nBaseline: 1.30 bpb.\n")
    commit_all(tmp_path)
    return tmp_path


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as scripted:
        yield scripted


class Smoke:
    """A real smoke run: the experiment as a subprocess; its stderr tail is the error."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: list[str] = []

    def __call__(self, proposal: Proposal) -> str | None:
        self.runs.append(proposal.title)
        done = subprocess.run(
            [sys.executable, "experiments/train.py"],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stderr.strip().splitlines()[-1] if done.returncode else None


class Written:
    """What the loop is told before each smoke run: the files the edits wrote."""

    def __init__(self) -> None:
        self.paths: list[list[str]] = []

    def __call__(self, applied: AppliedEdits) -> None:
        self.paths.append(sorted(path.name for path in applied.written))


def _llm(server: ScriptedOpenAIServer, root: Path) -> LLMProposer:
    settings = LLMSettings(
        base_url=server.base_url,
        proposer_model="test-model",
        timeout_s=2,
        max_retries=0,
        max_usd=None,
    )
    return LLMProposer(LLMClient(settings, root / ".vibe" / "llm-calls.jsonl"), "test-model")


def _context(root: Path):
    return proposal_context(Workspace(root), Settings(), history=[])


def _train(root: Path) -> str:
    return (root / "experiments" / "train.py").read_text()


def test_good_proposal_is_applied_and_smoke_run(server, root):
    server.reply_json(GOOD)
    smoke = Smoke(root)

    outcome = propose_and_apply(
        _llm(server, root), _context(root), root, smoke, written := Written()
    )

    assert outcome.ok and outcome.failure is None and len(outcome.attempts) == 1
    assert '"lr": 4e-3,' in _train(root)
    assert smoke.runs == ["Raise the learning rate"] and written.paths == [["train.py"]]
    assert outcome.proposal.runs[0].seeds == [0, 1, 2]
    assert "# Research notes" in server.requests[0]["messages"][1]["content"]


BAD_EDITS = {
    "outside experiments": (("notes/README.md", "Baseline", "Best"), "is outside experiments/"),
    "path traversal": (("experiments/../notes/README.md", "Baseline", "Best"), "uses '..'"),
    "no-op": (("experiments/train.py", '"lr": 2e-3,', '"lr": 2e-3,'), "no-op"),
    "does not compile": (
        ("experiments/train.py", "def main():", "def main(:"),
        "after the edits; nothing was changed",
    ),
    "matches twice": (
        ("experiments/train.py", "    if CONFIG", "    if not CONFIG"),
        "matches 2 times",
    ),
}


@pytest.mark.parametrize("case", BAD_EDITS, ids=list(BAD_EDITS))
def test_rejected_edit_goes_back_to_the_llm_once(server, root, case):
    edit, message = BAD_EDITS[case]
    server.reply_json(_proposal(edit, title="A bad edit"))
    server.reply_json(GOOD)
    readme = (root / "notes" / "README.md").read_text()

    outcome = propose_and_apply(_llm(server, root), _context(root), root, Smoke(root), Written())

    assert outcome.ok and [a.stage for a in outcome.attempts] == ["apply", None]
    assert message in (outcome.attempts[0].error or "")
    feedback = server.requests[1]["messages"]
    assert json.loads(feedback[-2]["content"])["title"] == "A bad edit"
    assert outcome.attempts[0].error in feedback[-1]["content"]
    assert (root / "notes" / "README.md").read_text() == readme
    assert '"lr": 4e-3,' in _train(root)


def test_two_failures_record_a_failed_proposal_and_leave_the_files_alone(server, root):
    server.reply_json(
        _proposal(("experiments/train.py", '"n_layer": 3,', '"n_layer": 0,'), title="No layers")
    )
    server.reply_json(
        _proposal(
            ("experiments/train.py", '"mlp": "gelu",', '"mlp": "mish",'), title="Mish activation"
        )
    )

    outcome = propose_and_apply(_llm(server, root), _context(root), root, Smoke(root), Written())

    assert not outcome.ok and outcome.applied is None
    assert [a.stage for a in outcome.attempts] == ["smoke", "smoke"]
    assert outcome.attempts[0].error == "n_layer must be at least 1"
    assert "n_layer must be at least 1" in server.requests[1]["messages"][-1]["content"]
    assert outcome.failure == "ValueError: unknown mlp 'mish'"
    assert outcome.proposal.title == "Mish activation"
    assert _train(root) == TRAIN


def test_offline_planner_goes_through_the_same_path(root):
    outcome = propose_and_apply(OfflinePlanner(), _context(root), root, Smoke(root), Written())

    assert outcome.ok and outcome.proposal.move == "lr/up:lr=0.002->0.004"
    assert '"lr": 0.004,  # peak learning rate' in _train(root)


def test_offline_planner_after_a_smoke_failure_proposes_another_move(root):
    verdicts = iter(["Killed: out of memory", None])

    outcome = propose_and_apply(
        OfflinePlanner(), _context(root), root, lambda proposal: next(verdicts), Written()
    )

    first, second = (attempt.proposal.move for attempt in outcome.attempts)
    assert outcome.ok and first != second
    assert outcome.attempts[0].error == "Killed: out of memory"
