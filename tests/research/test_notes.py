"""Notes rendered from the ledger: marked blocks, the researcher's text kept byte for byte, export."""

import random
from pathlib import Path

import pytest
from research_records import many_records

from vibe_research.lm.errors import UserError
from vibe_research.research.notes.blocks import replace_blocks, strip_markers
from vibe_research.research.notes.render import (
    export_markdown,
    readme_template,
    render_from_ledger,
    render_notes,
)
from vibe_research.research.propose.context import proposal_context
from vibe_research.research.settings import Settings
from vibe_research.research.state import ledger as L
from vibe_research.research.state.experiments import rebuild_state
from vibe_research.research.workspace import Workspace

QUESTION = "What is the best five-minute TinyStories model?"
_MARKED = r"<!-- vibe:begin (\S+) -->.*?<!-- vibe:end \1 -->"


def _outside(text: str) -> list[str]:
    """The researcher's parts of a page: everything outside the marked blocks."""
    import re

    return re.split(_MARKED, text, flags=re.DOTALL)[::2]


def test_replace_blocks_changes_only_what_lies_between_markers() -> None:
    page = "intro  \r\n<!-- vibe:begin a -->\nold\n<!-- vibe:end a -->\nmine ✓\n<!-- vibe:begin b -->\n<!-- vibe:end b -->"
    out = replace_blocks(page, {"a": "new A", "b": "new B", "c": "new C"})
    assert out == (
        "intro  \r\n<!-- vibe:begin a -->\nnew A\n<!-- vibe:end a -->\nmine ✓\n<!-- vibe:begin b -->\nnew B\n"
        "<!-- vibe:end b -->\n\n<!-- vibe:begin c -->\nnew C\n<!-- vibe:end c -->\n"
    )
    assert replace_blocks(out, {"a": "new A", "b": "new B", "c": "new C"}) == out


def test_a_marker_inside_a_body_is_defused() -> None:
    page = replace_blocks(
        "<!-- vibe:begin a -->\n<!-- vibe:end a -->\n", {"a": "diff: +<!-- vibe:end a -->"}
    )
    assert (
        replace_blocks(page, {"a": "fine"}) == "<!-- vibe:begin a -->\nfine\n<!-- vibe:end a -->\n"
    )


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ("<!-- vibe:begin a -->\ntext", "block 'a' is never closed"),
        ("<!-- vibe:end a -->", "has no matching begin"),
        (
            "<!-- vibe:begin a -->\n<!-- vibe:begin b -->",
            "block 'a' is not closed before 'b' begins",
        ),
        (
            "<!-- vibe:begin a --><!-- vibe:end a --><!-- vibe:begin a --><!-- vibe:end a -->",
            "appears twice",
        ),
    ],
)
def test_broken_markers_are_refused_with_what_to_restore(page: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        replace_blocks(page, {"a": "x"}, "notes/README.md")


def test_researcher_text_survives_a_hundred_re_renders_byte_for_byte(tmp_path: Path) -> None:
    records = many_records(8)
    workspace = Workspace(tmp_path)
    render_notes(workspace, rebuild_state(records[:20]), QUESTION)
    readme = workspace.notes / "README.md"
    page = workspace.experiments_pages / "0000-baseline.md"
    # the researcher writes around and between the blocks: unicode, odd spacing, CRLF, no final newline
    readme.write_bytes(
        (
            "My log — café ☕\r\n\r\n"
            + readme.read_text().replace("## Timeline", "Between blocks.  \n\n## Timeline")
            + "\n| my | table |\n\tindented\n<!-- my own comment -->\nno newline at the end"
        ).encode()
    )
    page.write_bytes(
        (
            page.read_text().replace("## Your notes", "## Your notes\n\nIt was *fast*.\n")
            + "Last words."
        ).encode()
    )
    readme_outside, page_outside = (
        _outside(readme.read_bytes().decode()),
        _outside(page.read_bytes().decode()),
    )
    rng = random.Random(5)
    for _ in range(100):
        render_notes(workspace, rebuild_state(records[: rng.randint(14, len(records))]), QUESTION)
        assert _outside(readme.read_bytes().decode()) == readme_outside
        assert _outside(page.read_bytes().decode()) == page_outside
    render_notes(workspace, rebuild_state(records), QUESTION)
    assert "[0008-change-8](experiments/0008-change-8.md)" in readme.read_bytes().decode()
    assert _outside(readme.read_bytes().decode()) == readme_outside


def test_pages_carry_what_a_reader_needs(tmp_path: Path, records: list[L.Record]) -> None:
    workspace = Workspace(tmp_path)
    render_notes(workspace, rebuild_state(records), QUESTION)
    readme = (workspace.notes / "README.md").read_text()
    assert f"> {QUESTION}" in readme
    assert (
        "**Wider model** ([0001-wider-model](experiments/0001-wider-model.md)), commit `aaaaaaaa`"
        in readme
    )
    assert (
        "1.2050 [1.1926, 1.2174]" in readme
        and "trains `experiments/train.py` with `lr=0.003`" in readme
    )
    assert (
        readme.index("0001-wider-model](")
        < readme.index("0002-n-gram-teacher](")
        < readme.index("| 3 | [0000-baseline")
    )
    assert 'the researcher\'s own idea: "try shallow fusion at 0.3"' in readme
    page = (workspace.experiments_pages / "0002-n-gram-teacher.md").read_text()
    for expected in (
        "**Hypothesis.** N-gram teacher lowers bpb.",
        "```diff\n--- a/experiments/train.py",
        "| 0002-n-gram-teacher-s3 | 3 | – | – | – | – | – | – | interrupted |",
        "Welch t-test, n=3 vs 3",
        "> **Once upon a time**, there was a little girl named Lily.",
        "Reads cleanly.",
        "**worse**, discarded: the change was reverted by a new commit (`dddddddd`).",
        "The stories got repetitive",
        "![loss curves](../figures/0002-n-gram-teacher-loss.png)",
        "The turn took 950 s, 6.8 s of it outside training and evaluation (0.7%): judging 4.2 s, proposing 2.5 s.",
    ):
        assert expected in page, expected
    wide = (workspace.experiments_pages / "0001-wider-model.md").read_text()
    assert (
        "2. **N-gram teacher**: distil from a 4-gram *Why:* the seed's best idea (expected: -0.05 bpb; ~25 min; risk: medium) ← **picked**"
        in wide
    )
    assert "New best, tagged `best/0001-wider-model`." in wide


def test_the_timeline_keeps_every_pick_from_one_menu(
    tmp_path: Path, records: list[L.Record]
) -> None:
    """A pick that first finished an open turn and then crashed is followed by another pick from
    the same menu: both are the researcher's choices, and the timeline shows both in order."""
    again = L.PickRecord(experiment="0001-wider-model", choice=3, title="Raise learning rate")
    workspace = Workspace(tmp_path)
    render_notes(workspace, rebuild_state([*records, again]), QUESTION)
    readme = (workspace.notes / "README.md").read_text()
    assert (
        "  - next: the researcher picked #2, N-gram teacher; "
        "then the researcher picked #3, Raise learning rate\n"
    ) in readme


def test_an_empty_ledger_renders_the_template_and_nothing_twice(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    assert render_notes(workspace, rebuild_state([]), QUESTION) == [workspace.notes / "README.md"]
    assert "_No experiments yet._" in (workspace.notes / "README.md").read_text()
    assert render_notes(workspace, rebuild_state([]), QUESTION) == []
    assert readme_template().count("<!-- vibe:begin") == 4


def test_render_from_ledger_and_export(tmp_path: Path, records: list[L.Record]) -> None:
    workspace = Workspace(tmp_path)
    for record in records:
        L.append(workspace.ledger, record)
    (workspace.notes / ".README.md.abc.tmp").write_text("left by a killed writer")
    state, changed = render_from_ledger(workspace, QUESTION, figures=False)
    assert len(changed) == 4 and not (workspace.notes / ".README.md.abc.tmp").exists()
    exported = export_markdown(workspace, state)
    assert "<!-- vibe:" not in exported and exported.count("\n---\n") == 3
    assert (
        "## 0001 · Wider model" in exported and "](figures/0001-wider-model-loss.png)" in exported
    )
    assert strip_markers("a\n<!-- vibe:begin x -->\nb\n<!-- vibe:end x -->\n") == "a\n\nb\n\n"


def test_a_crashed_run_shows_the_end_of_its_log(tmp_path: Path, records: list[L.Record]) -> None:
    crash = L.RunEndRecord(
        experiment="0002-n-gram-teacher",
        run="0002-n-gram-teacher-s3",
        outcome="crashed",
        reason="exit code 1",
        log_tail="\n".join(f"line {i}" for i in range(40)) + "\nValueError: bad shape",
    )
    workspace = Workspace(tmp_path)
    render_notes(workspace, rebuild_state([*records, crash]), QUESTION)
    page = (workspace.experiments_pages / "0002-n-gram-teacher.md").read_text()
    assert "| crashed: exit code 1 |" in page
    assert "<summary>0002-n-gram-teacher-s3: crashed, last lines of its log</summary>" in page
    assert "ValueError: bad shape" in page and "line 26\n" in page and "line 25\n" not in page


def test_an_undecided_experiment_shows_how_it_stands_against_the_best(
    tmp_path: Path, records: list[L.Record]
) -> None:
    undecided = [
        r
        for r in records
        if not (r.experiment == "0002-n-gram-teacher" and r.kind in ("decision", "pick", "note"))
    ]
    workspace = Workspace(tmp_path)
    render_notes(workspace, rebuild_state(undecided), QUESTION)
    page = (workspace.experiments_pages / "0002-n-gram-teacher.md").read_text()
    assert "Not decided yet; so far, against [0001-wider-model](0001-wider-model.md)" in page
    assert "1 run(s) were interrupted; `vibe-research continue` offers to rerun them" in page
    assert "interrupted" in (workspace.notes / "README.md").read_text()


def test_the_sealed_test_number_is_shown_to_people_and_never_to_the_llm(
    tmp_path: Path, records: list[L.Record]
) -> None:
    best = rebuild_state(records).best_experiment
    sealed = [
        L.SealedScoreRecord(
            experiment=best.id,
            run=run.run,
            bpb=1.2311 + 0.001 * i,
            perplexity=9.7,
            tokens=40_000,
            source="test.txt",
        )
        for i, run in enumerate(best.chosen_runs)
    ]
    workspace = Workspace(tmp_path)
    (tmp_path / "experiments").mkdir()
    render_notes(workspace, rebuild_state([*records, *sealed]), "Which model?")
    readme = (workspace.notes / "README.md").read_text(encoding="utf-8")
    assert "sealed test split" in readme and "1.2321" in readme and "test bpb (gap)" in readme
    assert "+0.0271 from valid" in readme  # test 1.2321 against valid 1.2050: the gap
    context = proposal_context(workspace, Settings(), history=[])
    prompt = "\n".join(message["content"] for message in context.messages)
    assert "1.2321" not in prompt and "1.231" not in prompt and "(sealed)" in prompt
