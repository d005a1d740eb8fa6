"""The real menu in a pseudo-terminal: pick 2, then an own idea, then quit."""

import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from vibe_research.research.state.experiments import rebuild_state
from vibe_research.research.state.ledger import PickRecord, read

PROMPT = "next>"
IDEA = "try a much wider model with the same depth"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_menu_pick_then_own_idea_then_quit(tiny_workspace: Path) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "vibe_research", "continue"],
        cwd=str(tiny_workspace),
        encoding="utf-8",
        timeout=600,
        dimensions=(50, 160),
    )
    child.expect(PROMPT)  # the baseline ran and the menu is up
    child.sendline("2")
    child.expect(PROMPT)
    child.sendline("e")
    child.expect("your idea:")
    child.sendline(IDEA)
    child.expect(PROMPT)
    child.sendline("k")  # keep the idea's experiment whatever the verdict
    child.expect("kept by you")
    child.expect(PROMPT)
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before

    records = read(tiny_workspace / "notes" / "ledger.jsonl").records
    picks = [r for r in records if isinstance(r, PickRecord)]
    assert [(p.choice, p.by) for p in picks] == [(2, "researcher"), (None, "researcher")]
    assert picks[1].idea == IDEA
    state = rebuild_state(records)
    experiments = list(state.experiments.values())
    assert len(experiments) == 3 and experiments[2].proposal.idea == IDEA
    baseline_page = (
        tiny_workspace / "notes" / "experiments" / f"{experiments[0].id}.md"
    ).read_text(encoding="utf-8")
    assert "**picked**" in baseline_page
    idea_page = (tiny_workspace / "notes" / "experiments" / f"{experiments[1].id}.md").read_text(
        encoding="utf-8"
    )
    assert IDEA in idea_page

    kept = experiments[2]
    assert kept.decision.by == "researcher" and kept.decision.kept and state.best == kept.id
    git = ["git", "-C", str(tiny_workspace)]
    assert f"best/{kept.id}" in subprocess.run([*git, "tag"], capture_output=True, text=True).stdout
    changed = subprocess.run(
        [*git, "diff", kept.proposal.commit, "--", "experiments/"], capture_output=True, text=True
    )
    assert changed.stdout == ""  # the kept change is what experiments/ holds now


def test_menu_rejects_bad_keys_with_a_hint() -> None:
    from vibe_research.research.loop.menu import Choice, parse_choice

    assert parse_choice("2", 3) == Choice("pick", 2)
    assert parse_choice("a 4", 3) == Choice("auto", 4)
    assert parse_choice("e bigger batch", 3) == Choice("idea", text="bigger batch")
    assert parse_choice("q", 3) == Choice("quit")
    assert "1 to 3" in parse_choice("7", 3)
    assert "a N" in parse_choice("a", 3)
    assert "unknown" in parse_choice("zzz", 3)
