"""Markdown pieces the notes pages share: tables, numbers, intervals, links, verdict words."""

from vibe_research.research.state.experiments import ExperimentState
from vibe_research.research.stats import Summary

SEALED_OPEN, SEALED_CLOSE = "<!-- sealed -->", "<!-- /sealed -->"


def sealed(text: str) -> str:
    """Text that only people read: a number of the sealed test split. Prompts built from the notes
    replace it (propose/context.py), so no LLM ever sees how a model did on test."""
    return f"{SEALED_OPEN}{text}{SEALED_CLOSE}"


def cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: float | int | None, digits: int = 3) -> str:
    if value is None or value != value:  # NaN: not measured
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def interval(summary: Summary | None, digits: int = 3) -> str:
    if summary is None:
        return "–"
    if summary.low is None or summary.high is None:
        return f"{summary.mean:.{digits}f} (n=1)"
    return f"{summary.mean:.{digits}f} [{summary.low:.{digits}f}, {summary.high:.{digits}f}]"


def short_commit(commit: str | None) -> str:
    return f"`{commit[:8]}`" if commit else "–"


def page_link(experiment_id: str, from_readme: bool = True) -> str:
    folder = "experiments/" if from_readme else ""
    return f"[{experiment_id}]({folder}{experiment_id}.md)"


def verdict_word(experiment: ExperimentState) -> str:
    decision = experiment.decision
    if decision is None:
        return "interrupted" if experiment.interrupted_runs else "in progress"
    kept = "kept" if decision.kept else "discarded"
    by = ", by the researcher" if decision.by == "researcher" else ""
    return decision.verdict if decision.verdict == "baseline" else f"{decision.verdict}, {kept}{by}"
