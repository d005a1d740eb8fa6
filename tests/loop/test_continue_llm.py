"""`continue` against a scripted OpenAI-compatible server: real HTTP, real edits, real runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import vibe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from openai_server import ScriptedOpenAIServer

from vibe_research.research.loop.drift import batch_name
from vibe_research.research.state.experiments import rebuild_state
from vibe_research.research.state.ledger import read

SUGGESTIONS = {
    "items": [
        {
            "title": "Wider model",
            "idea": "n_embd 32 -> 48",
            "why": "wider was better",
            "expected_effect": "bpb -0.05",
            "cost_minutes": 1,
            "risk": "low",
        },
        {
            "title": "Longer context",
            "idea": "context 64 -> 128",
            "why": "stories are long",
            "expected_effect": "bpb -0.02",
            "cost_minutes": 1,
            "risk": "medium",
        },
    ]
}


def proposal(title: str, search: str, replace: str) -> dict:
    return {
        "title": title,
        "hypothesis": "h",
        "rationale": "r",
        "expected_effect": "e",
        "risk": "low",
        "edits": [{"path": "experiments/train.py", "search": search, "replace": replace}],
        "runs": [{"seeds": [0, 1]}],
    }


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_scripted_llm_edits_train_py(tiny_workspace: Path) -> None:
    settings = tiny_workspace / "vibe-research.toml"
    settings.write_text(
        settings.read_text(encoding="utf-8")
        .replace('[judge]\nbackend = "auto"', '[judge]\nbackend = "heuristic"')
        .replace("drift = 1.0", "drift = 0.0"),  # every comparison reruns both sides
        encoding="utf-8",
    )
    subprocess.run(
        ["git", "commit", "-qam", "heuristic judge, drift 0"], cwd=tiny_workspace, check=True
    )
    train_py = tiny_workspace / "experiments" / "train.py"
    width_line = next(
        line
        for line in train_py.read_text(encoding="utf-8").splitlines()
        if line.lstrip().startswith('"n_embd"')
    )
    with ScriptedOpenAIServer() as server:
        server.reply_json(SUGGESTIONS)  # after the baseline
        server.reply_json(proposal("Edit a line that is not there", "NO SUCH LINE", "x = 1"))
        server.reply_json(proposal("Wider model", width_line, width_line.replace("32", "48", 1)))
        server.reply_json(SUGGESTIONS)
        crash = "CONFIG = {"
        server.reply_json(
            proposal("Crash at run time", crash, 'raise RuntimeError("scripted crash")\nCONFIG = {')
        )
        server.reply_json(
            proposal("Crash again", crash, 'raise RuntimeError("scripted crash")\nCONFIG = {')
        )
        server.reply_json(SUGGESTIONS)
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
        done = vibe(tiny_workspace, "continue", "--auto", "2", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert server.pending == 0
        sent = [request["messages"][-1]["content"] for request in server.requests]
    assert (
        "search block" in sent[2] and "scripted crash" in sent[5]
    )  # each failure went back to the model once

    state = rebuild_state(read(tiny_workspace / "notes" / "ledger.jsonl").records)
    experiments = list(state.experiments.values())
    verdicts = [(e.title, e.decision.verdict) for e in experiments]
    assert verdicts[0] == ("Baseline: experiments/ as it stands", "baseline")
    assert verdicts[1] == ("Edit a line that is not there", "failed")
    assert verdicts[2][0] == "Wider model" and verdicts[2][1] != "failed"
    assert [v for _, v in verdicts[3:]] == ["failed", "failed"]
    assert "scripted crash" in experiments[4].decision.reason
    wider = experiments[2]
    # the machine measured before its first run was not at the baseline's speed (drift 0), so
    # its two seeds ran as the drift guard's two pairs beside the baseline's code (a worktree of
    # its commit) from the start, none alone, and the verdict compares those
    own = [run for run in wider.measured_runs if run.start.batch is None]
    assert wider.proposal.source == "llm" and "+" in wider.proposal.diff and own == []
    beside = batch_name(wider.id)
    assert len(wider.runs_of(beside)) == 2 == len(experiments[0].runs_of(beside))
    compared = wider.decision.comparison
    assert compared.bpb.n_candidate == compared.bpb.n_best == 2
    assert "side by side from the start" in wider.decision.drift
    assert "scripted crash" not in train_py.read_text(encoding="utf-8")
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=tiny_workspace, capture_output=True, text=True
        ).stdout
        == ""
    )
