"""The fault server as its own process, as a fault soak of `vibe-research continue` starts it."""

import signal
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from openai_server import server_process

from vibe_research.llm.client import LLMClient
from vibe_research.llm.errors import RequestRejected
from vibe_research.llm.schemas import Proposal, Suggestions
from vibe_research.llm.settings import LLMSettings

SERVER = Path(__file__).parents[1] / "openai_server.py"
TRAIN = Path(__file__).parents[2] / "vibe_research" / "templates" / "experiments" / "train.py"


def fault_server(*args: str) -> AbstractContextManager[tuple[str, subprocess.Popen]]:
    return server_process(*args, log=True)


def _prompt() -> list[dict[str, str]]:
    """A proposer prompt as research/prompting.py builds it: the experiments/ files fenced."""
    train = TRAIN.read_text(encoding="utf-8")
    files = f"## experiments/train.py\n\n```python\n{train.rstrip()}\n```"
    return [
        {"role": "system", "content": "You are a researcher."},
        {"role": "user", "content": f"# The current experiments/ files\n\n{files}\n\nPropose."},
    ]


def _settings(address: str) -> LLMSettings:
    return LLMSettings(base_url=address, timeout_s=5, deadline_s=10, max_retries=0, max_usd=None)


def test_without_faults_it_answers_proposals_that_apply_to_the_files(tmp_path):
    with fault_server("--fail-rate", "0", "--seed", "1") as (address, process):
        client = LLMClient(_settings(address), tmp_path / "llm-calls.jsonl")
        proposal = client.structured(_prompt(), Proposal, "test-model")
        suggestions = client.structured(_prompt(), Suggestions, "test-model")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        log = process.stderr.read()
    train = TRAIN.read_text(encoding="utf-8")
    assert proposal.edits and all(train.count(edit.search) == 1 for edit in proposal.edits)
    assert 2 <= len(suggestions.items) <= 3
    assert "#1 Proposal: answered" in log and "#2 Suggestions: answered" in log


def test_the_fault_modes_are_chosen_on_the_command_line(tmp_path):
    with fault_server("--fail-rate", "1", "--faults", "unauthorized") as (address, _):
        client = LLMClient(_settings(address), tmp_path / "llm-calls.jsonl")
        with pytest.raises(RequestRejected, match="HTTP 401"):
            client.structured(_prompt(), Proposal, "test-model")


def test_an_unknown_fault_mode_is_one_line_and_exit_2():
    done = subprocess.run(
        [sys.executable, str(SERVER), "--faults", "typo"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "unknown fault modes ['typo']" in done.stderr
