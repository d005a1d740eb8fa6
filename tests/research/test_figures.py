"""Figures drawn from the research state: real PNGs, the same bytes for the same ledger."""

from pathlib import Path

from vibe_research.research.notes.figures import PROGRESS_FIGURE, loss_figure_name, render_figures
from vibe_research.research.state import ledger as L
from vibe_research.research.state.experiments import rebuild_state

PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_are_pngs_drawn_once_and_redrawn_identically(
    tmp_path: Path, records: list[L.Record]
) -> None:
    state = rebuild_state(records)
    changed = render_figures(tmp_path, state)
    expected = [tmp_path / PROGRESS_FIGURE] + [
        tmp_path / loss_figure_name(e) for e in state.experiments
    ]
    assert sorted(changed) == sorted(expected)
    for path in expected:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    assert render_figures(tmp_path, state) == []  # same state, same bytes: nothing rewritten


def test_no_measurements_no_figures(tmp_path: Path) -> None:
    proposal = L.ProposalRecord(
        experiment="0000-baseline", title="Baseline", hypothesis="as it stands"
    )
    assert render_figures(tmp_path, rebuild_state([proposal])) == []
    assert not list(tmp_path.iterdir())
