"""Render the research notes from the ledger: notes/README.md and one page per experiment.

Every block is a pure function of the research state, so re-rendering the same ledger gives the
same bytes; the researcher's text outside the markers is never touched (see blocks.py).
"""

import logging
import re
from importlib import resources
from pathlib import Path

from vibe_research.lm.atomic import remove_stale_temps, write_text_if_changed
from vibe_research.lm.errors import UserError
from vibe_research.research.notes.blocks import check_blocks, replace_blocks, strip_markers
from vibe_research.research.notes.page import new_page, page_blocks
from vibe_research.research.notes.readme import readme_blocks
from vibe_research.research.state.experiments import ResearchState
from vibe_research.research.workspace import Workspace

log = logging.getLogger(__name__)


def readme_template() -> str:
    return (resources.files("vibe_research") / "templates" / "notes" / "README.md").read_text(
        encoding="utf-8"
    )


def read_page(path: Path) -> str:
    """The page exactly as on disk: no newline translation, so CRLF and the like survive."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8 so its blocks can be updated"
        ) from exc


def check_notes(workspace: Workspace) -> None:
    """Every page's markers balanced, checked before a turn spends its runs: a page the
    researcher broke is said at once (UserError naming it and the line to restore), not after
    the turn when its notes are rendered."""
    pages = [workspace.notes / "README.md", *sorted(workspace.experiments_pages.glob("*.md"))]
    for page in pages:
        if page.is_file():
            check_blocks(read_page(page), str(page))


def render_notes(
    workspace: Workspace, state: ResearchState, question: str, confidence: float = 0.95
) -> list[Path]:
    """Re-render README and every experiment page from `state`; returns the files that changed."""
    for folder in (workspace.notes, workspace.experiments_pages, workspace.figures):
        for path in remove_stale_temps(folder):
            log.info("removed %s, left by an interrupted write", path)
    changed = []
    readme = workspace.notes / "README.md"
    current = read_page(readme) if readme.exists() else readme_template()
    if write_text_if_changed(
        readme, replace_blocks(current, readme_blocks(state, question, confidence), str(readme))
    ):
        changed.append(readme)
    for experiment in state.experiments.values():
        page = workspace.experiments_pages / f"{experiment.id}.md"
        bodies = page_blocks(state, experiment, confidence)
        text = (
            replace_blocks(read_page(page), bodies, str(page))
            if page.exists()
            else new_page(experiment, bodies)
        )
        if write_text_if_changed(page, text):
            changed.append(page)
    log.debug("notes: %d file(s) changed", len(changed))
    return changed


_HEADING = re.compile(r"^(#+) ", re.MULTILINE)


def export_markdown(workspace: Workspace, state: ResearchState) -> str:
    """README and every page as one markdown document (markers removed) to paste into another model."""
    readme = workspace.notes / "README.md"
    parts = [strip_markers(read_page(readme))] if readme.exists() else []
    for experiment in state.experiments.values():
        page = workspace.experiments_pages / f"{experiment.id}.md"
        if page.exists():
            text = strip_markers(read_page(page)).replace("](../figures/", "](figures/")
            parts.append(_HEADING.sub(r"#\1 ", text))
    return "\n\n---\n\n".join(part.strip() for part in parts) + "\n"


def render_from_ledger(
    workspace: Workspace, question: str, figures: bool = True, confidence: float = 0.95
) -> tuple[ResearchState, list[Path]]:
    """Read notes/ledger.jsonl, fold it, re-render every page (and figure); the state and changed files."""
    from vibe_research.research.notes.figures import render_figures
    from vibe_research.research.state.experiments import rebuild_state
    from vibe_research.research.state.ledger import read

    ledger = read(workspace.ledger)
    state = rebuild_state(ledger.records)
    changed = render_notes(workspace, state, question, confidence)
    if figures:
        changed += render_figures(workspace.figures, state)
    return state, changed
