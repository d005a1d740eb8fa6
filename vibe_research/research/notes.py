"""Render the research notes from the ledger: notes/README.md and one page per experiment.

Every block is a pure function of the research state, so re-rendering the same ledger gives the
same bytes; the researcher's text outside the markers is never touched (see blocks.py).
"""

import logging
import re
from importlib import resources
from pathlib import Path

from vibe_research.lm.errors import UserError
from vibe_research.research.blocks import block, remove_stale_temps, replace_blocks, strip_markers, write_atomic
from vibe_research.research.figures import PROGRESS_FIGURE, has_loss_curves, loss_figure_name
from vibe_research.research.ledger import Sample
from vibe_research.research.state import ExperimentState, ResearchState, RunState, leaderboard
from vibe_research.research.stats import Difference, Summary, p_text
from vibe_research.workspace import Workspace

log = logging.getLogger(__name__)

README_BLOCKS = ("question", "best", "leaderboard", "timeline")
SAMPLES_SHOWN = 3


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _summary(summary: Summary | None, digits: int = 3) -> str:
    if summary is None:
        return "–"
    if summary.low is None or summary.high is None:
        return f"{summary.mean:.{digits}f} (n=1)"
    return f"{summary.mean:.{digits}f} [{summary.low:.{digits}f}, {summary.high:.{digits}f}]"


def _short(commit: str | None) -> str:
    return f"`{commit[:8]}`" if commit else "–"


def _page_link(experiment_id: str, from_readme: bool = True) -> str:
    folder = "experiments/" if from_readme else ""
    return f"[{experiment_id}]({folder}{experiment_id}.md)"


def _verdict_word(experiment: ExperimentState) -> str:
    decision = experiment.decision
    if decision is None:
        return "interrupted" if experiment.interrupted_runs else "in progress"
    kept = "kept" if decision.kept else "discarded"
    by = ", by the researcher" if decision.by == "researcher" else ""
    return decision.verdict if decision.verdict == "baseline" else f"{decision.verdict}, {kept}{by}"


# --- notes/README.md -------------------------------------------------------------------------


def _best_block(state: ResearchState) -> str:
    best = state.best_experiment
    if best is None:
        return "_No best yet: the first `vibe-research continue` measures the baseline._"
    rows = {row.experiment: row for row in leaderboard(state)}
    row = rows[best.id]
    perplexities = [run.evaluation.perplexity for run in best.measured_runs if run.evaluation]
    tokenizers = sorted({run.evaluation.tokenizer for run in best.measured_runs if run.evaluation})
    decision = best.decision
    lines = [
        f"**{best.title}** ({_page_link(best.id)}), commit {_short(best.proposal.commit if best.proposal else None)}"
        + (f", tag `{decision.tag}`" if decision and decision.tag else ""),
        "",
        f"- validation bits per byte: **{_summary(row.bpb, 4)}** (mean over {row.runs} seeds, 95% t interval)",
        f"- perplexity: {_num(sum(perplexities) / len(perplexities), 2) if perplexities else '–'}"
        + (f" per {', '.join(tokenizers)} token" if tokenizers else ""),
        f"- judge score: {_summary(row.judge, 2)} (1 to 10)",
    ]
    overrides = _overrides(best)
    lines.append(f"- config: {overrides}" if overrides else "- config: the defaults of experiments/ at that commit")
    return "\n".join(lines)


def _overrides(experiment: ExperimentState) -> str:
    seen = {tuple(sorted(run.start.overrides.items())) for run in experiment.runs.values() if run.start}
    pairs = sorted({pair for overrides in seen for pair in overrides})
    return ", ".join(f"`{key}={value}`" for key, value in pairs)


def _leaderboard_block(state: ResearchState) -> str:
    rows = leaderboard(state)
    if not rows:
        return "_Nothing measured yet._"
    body = [[
        str(row.rank), ("★ " if row.best else "") + _page_link(row.experiment), row.title,
        _summary(row.bpb, 4), _summary(row.judge, 2),
        f"{row.win_rate:.0%}" if row.win_rate is not None else "–", str(row.runs),
        _verdict_word(state.experiments[row.experiment]),
    ] for row in rows]
    table = _table(["#", "experiment", "title", "bpb (95% CI)", "judge (95% CI)", "win rate", "seeds", "verdict"], body)
    measured = any(row.bpb for row in rows)
    return f"{table}\n\n![progress over experiments](figures/{PROGRESS_FIGURE})" if measured else table


def _timeline_block(state: ResearchState) -> str:
    if not state.experiments:
        return "_No experiments yet._"
    lines = []
    for experiment in state.experiments.values():
        first = experiment.proposal.at if experiment.proposal else None
        when = first.strftime("%Y-%m-%d %H:%M") if first else "????"
        bpb = experiment.bpbs
        measured = f", bpb {sum(bpb) / len(bpb):.4f} over {len(bpb)} seeds" if bpb else ""
        lines.append(f"- {when} · {_page_link(experiment.id)} **{experiment.title}**: {_verdict_word(experiment)}{measured}")
        if experiment.interrupted_runs:
            lines.append(f"  - interrupted: {', '.join(run.run for run in experiment.interrupted_runs)}")
        if experiment.pick:
            lines.append(f"  - next: {_pick_text(experiment)}")
    return "\n".join(lines)


def _pick_text(experiment: ExperimentState) -> str:
    pick = experiment.pick
    if pick is None:
        return ""
    who = "picked automatically" if pick.by == "auto" else "the researcher picked"
    if pick.choice is None:
        return f"the researcher's own idea: \"{pick.idea}\""
    return f"{who} #{pick.choice}, {pick.title}"


def readme_blocks(state: ResearchState, question: str) -> dict[str, str]:
    return {
        "question": f"> {question}",
        "best": _best_block(state),
        "leaderboard": _leaderboard_block(state),
        "timeline": _timeline_block(state),
    }


# --- notes/experiments/NNNN-slug.md ----------------------------------------------------------


def _summary_block(experiment: ExperimentState) -> str:
    proposal = experiment.proposal
    if proposal is None:
        return "_No proposal recorded for this experiment._"
    when = proposal.at.strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"**{_verdict_word(experiment).capitalize()}** · proposed by {proposal.source} on {when} · "
             f"commit {_short(proposal.commit)}", ""]
    if proposal.idea:
        lines += [f"*Prompted by:* {proposal.idea}", ""]
    lines += [f"**Hypothesis.** {proposal.hypothesis}"]
    for label, text in (("Why", proposal.rationale), ("Expected effect", proposal.expected_effect), ("Risk", proposal.risk)):
        if text:
            lines += ["", f"**{label}.** {text}"]
    return "\n".join(lines)


def _change_block(experiment: ExperimentState) -> str:
    diff = experiment.proposal.diff if experiment.proposal else ""
    if not diff.strip():
        return "_No code change: this measures experiments/ as it stood._"
    fence = "````" if "```" in diff else "```"
    return f"{fence}diff\n{diff.rstrip()}\n{fence}"


def _judge_mean(run: RunState) -> str:
    return f"{run.judgement.overall:.2f}" if run.judgement and run.judgement.scores else "–"


def _runs_block(experiment: ExperimentState) -> str:
    if not experiment.runs:
        return "_No runs yet._"
    rows = []
    for run in experiment.runs.values():
        end, evaluation = run.end, run.evaluation
        outcome = "interrupted" if run.end is None else end.outcome + (f": {end.reason}" if end.reason else "")
        rows.append([
            run.run, _num(run.seed), _num(end.steps if end else None), _num(end.tokens if end else None),
            _num(end.tokens_per_s, 0) if end else "–", _num(evaluation.bpb if evaluation else None, 4),
            _num(evaluation.perplexity if evaluation else None, 2), _judge_mean(run), outcome,
        ])
    table = _table(["run", "seed", "steps", "tokens", "tokens/s", "bpb", "perplexity", "judge", "outcome"], rows)
    provenance = _provenance(experiment)
    if provenance:
        table += f"\n\n{provenance}"
    if has_loss_curves(experiment):
        table += f"\n\n![loss curves](../figures/{loss_figure_name(experiment.id)})"
    return table


def _provenance(experiment: ExperimentState) -> str:
    """Where the numbers came from: device, library versions and the evaluator's fingerprint."""
    ends = [run.end for run in experiment.runs.values() if run.end]
    facts: dict[str, set[str]] = {}
    for end in ends:
        for label, value in (("device", end.device), ("lm fingerprint", end.lm_fingerprint), *end.versions.items()):
            if value:
                facts.setdefault(label, set()).add(value)
    budgets = {f"{run.start.budget_s:g} s" for run in experiment.runs.values() if run.start}
    if budgets:
        facts["budget"] = budgets
    return " · ".join(f"{label} {', '.join(sorted(values))}" for label, values in facts.items())


def _difference_line(difference: Difference | None, unit: str) -> str:
    if difference is None:
        return f"- {unit}: not measured on both sides"
    if difference.low is None or difference.high is None:
        return f"- {unit}: {difference.diff:+.4f} (one seed on each side: no interval)"
    return (f"- {unit}: {difference.diff:+.4f}, {difference.confidence:.0%} interval "
            f"[{difference.low:+.4f}, {difference.high:+.4f}], Welch t-test, n={difference.n_candidate} vs "
            f"{difference.n_best}, {p_text(difference.p_value)} → {difference.verdict}")


def _statistics_block(state: ResearchState, experiment: ExperimentState) -> str:
    from vibe_research.research.stats import summarize

    lines = []
    if experiment.bpbs:
        lines.append(f"- bpb over seeds: {_summary(summarize(experiment.bpbs), 4)}"
                     + (f", std {summarize(experiment.bpbs).std:.4f}" if len(experiment.bpbs) > 1 else ""))
    if experiment.judge_scores:
        lines.append(f"- judge score over seeds: {_summary(summarize(experiment.judge_scores), 2)}")
    decision = experiment.decision
    if decision and decision.comparison and decision.against:
        comparison = decision.comparison
        lines += ["", f"Against the best at the time, {_page_link(decision.against, from_readme=False)} "
                      f"(objective: {comparison.objective}; candidate minus best):",
                  _difference_line(comparison.bpb, "bpb (lower is better)"),
                  _difference_line(comparison.judge, "judge (higher is better)")]
    elif decision and decision.verdict == "baseline":
        lines += ["", "This is the baseline: later experiments are compared with it until one beats it."]
    return "\n".join(lines) if lines else "_No measurements yet._"


def _story(sample: Sample) -> str:
    text = sample.text
    if text.startswith(sample.prompt):
        text = text[len(sample.prompt):]
    story = f"**{sample.prompt.strip()}**{' ' if text[:1] not in ('', ' ', ',', '.') else ''}{text.strip()}"
    return "\n".join(f"> {line}" if line else ">" for line in story.splitlines())


def _showcase_run(experiment: ExperimentState) -> RunState | None:
    """The measured run with the median bpb: its samples are typical, neither lucky nor unlucky."""
    runs = sorted((run for run in experiment.measured_runs if run.evaluation and run.evaluation.samples),
                  key=lambda run: run.evaluation.bpb if run.evaluation else 0.0)
    return runs[len(runs) // 2] if runs else None


def _samples_block(experiment: ExperimentState) -> str:
    run = _showcase_run(experiment)
    if run is None or run.evaluation is None:
        return "_No samples yet._"
    scores = {(score.prompt, score.seed): score for score in run.judgement.scores} if run.judgement else {}
    parts = [f"From run {run.run} (seed {run.seed}, median bpb of the seeds):"]
    for sample in run.evaluation.samples[:SAMPLES_SHOWN]:
        score = scores.get((sample.prompt, sample.seed))
        caption = (f"*grammar {score.grammar:.0f}, creativity {score.creativity:.0f}, consistency "
                   f"{score.consistency:.0f}, plot {score.plot:.0f}*") if score else ""
        parts.append(_story(sample) + (f"\n\n{caption}" if caption else ""))
    return "\n\n".join(parts)


def _judge_block(experiment: ExperimentState) -> str:
    judged = [run for run in experiment.measured_runs if run.judgement and run.judgement.scores]
    if not judged:
        return "_Not judged yet._"
    scores = [score for run in judged for score in run.judgement.scores if run.judgement]
    first = judged[0].judgement
    means = {field: sum(getattr(s, field) for s in scores) / len(scores)
             for field in ("grammar", "creativity", "consistency", "plot")}
    paragraphs = [f"Judge: {first.judge} (rubric {first.rubric_version}), {len(scores)} samples over {len(judged)} seeds. "
                  "Means: " + ", ".join(f"{field} {value:.1f}" for field, value in means.items()) + "."]
    pairwise = [run.judgement.pairwise for run in judged if run.judgement and run.judgement.pairwise]
    if pairwise:
        wins = sum(p.wins for p in pairwise)
        total = sum(p.comparisons for p in pairwise)
        paragraphs.append(f"Pairwise against {pairwise[0].against}: {wins:g} points of {total} shared beginnings "
                          "(each judged in both orders, a win 1, a tie 0.5); win rate per seed " + ", ".join(f"{p.win_rate:.0%} [{p.low:.0%}, {p.high:.0%}]" for p in pairwise) + ".")
    showcase = _showcase_run(experiment) or judged[0]
    rationales = [s for s in (showcase.judgement.scores if showcase.judgement else []) if s.rationale][:SAMPLES_SHOWN]
    if rationales:
        paragraphs.append("\n".join(f"- *{score.prompt.strip()}*: {score.rationale}" for score in rationales))
    return "\n\n".join(paragraphs)


def _verdict_block(experiment: ExperimentState) -> str:
    decision = experiment.decision
    if decision is None:
        interrupted = experiment.interrupted_runs
        if interrupted:
            return f"_Not decided: {len(interrupted)} run(s) were interrupted; `vibe-research continue` offers to rerun them._"
        return "_Not decided yet._"
    action = "kept: the change stays in experiments/" if decision.kept else "discarded: the change was reverted by a new commit"
    lines = [f"**{decision.verdict}**, {action}" + (f" ({_short(decision.commit)})" if decision.commit else "") + "."]
    if decision.by == "researcher":
        lines.append("The researcher overrode the automatic verdict.")
    if decision.reason:
        lines.append(decision.reason)
    if decision.tag:
        lines.append(f"New best, tagged `{decision.tag}`.")
    return "\n\n".join(lines)


def _next_block(experiment: ExperimentState) -> str:
    lines = []
    if experiment.suggestions:
        picked = experiment.pick.choice if experiment.pick else None
        for number, item in enumerate(experiment.suggestions.items, start=1):
            cost = f"~{item.cost_minutes:g} min" if item.cost_minutes is not None else ""
            facts = "; ".join(part for part in (f"expected: {item.expected_effect}" if item.expected_effect else "",
                                                cost, f"risk: {item.risk}" if item.risk else "") if part)
            mark = " ← **picked**" if picked == number else ""
            lines.append(f"{number}. **{item.title}**: {item.idea}" + (f" *Why:* {item.why}" if item.why else "")
                         + (f" ({facts})" if facts else "") + mark)
    if experiment.pick and experiment.pick.choice is None:
        lines += ["", f"The researcher's own idea: \"{experiment.pick.idea}\""]
    elif experiment.pick and experiment.pick.by == "auto":
        lines += ["", "Picked automatically (unattended run)."]
    for note in experiment.notes:
        lines += ["", f"> {note.text}  \n> — the researcher, {note.at.strftime('%Y-%m-%d %H:%M')}"]
    return "\n".join(lines).strip() or "_No next steps offered yet._"


PAGE_SECTIONS = (
    ("summary", None),
    ("change", "The change"),
    ("runs", "Runs"),
    ("statistics", "Against the best"),
    ("samples", "Sample stories"),
    ("judge", "What the judge said"),
    ("verdict", "Verdict"),
    ("next", "Next steps"),
)


def page_blocks(state: ResearchState, experiment: ExperimentState) -> dict[str, str]:
    return {
        "summary": _summary_block(experiment),
        "change": _change_block(experiment),
        "runs": _runs_block(experiment),
        "statistics": _statistics_block(state, experiment),
        "samples": _samples_block(experiment),
        "judge": _judge_block(experiment),
        "verdict": _verdict_block(experiment),
        "next": _next_block(experiment),
    }


def new_page(experiment: ExperimentState, bodies: dict[str, str]) -> str:
    """The layout of a page rendered for the first time; headings outside blocks are the researcher's to edit."""
    parts = [f"# {experiment.id.split('-', 1)[0]} · {experiment.title}", ""]
    for name, heading in PAGE_SECTIONS:
        if heading:
            parts += [f"## {heading}", ""]
        parts += [block(name, bodies[name]), ""]
    parts += ["## Your notes", "", "_Write here: text outside the vibe markers is yours and is never rewritten._", ""]
    return "\n".join(parts)


def readme_template() -> str:
    return (resources.files("vibe_research") / "templates" / "notes" / "README.md").read_text(encoding="utf-8")


def read_page(path: Path) -> str:
    """The page exactly as on disk: no newline translation, so CRLF and the like survive."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8 so its blocks can be updated") from exc


def render_notes(workspace: Workspace, state: ResearchState, question: str) -> list[Path]:
    """Re-render README and every experiment page from `state`; returns the files that changed."""
    for folder in (workspace.notes, workspace.experiments_pages, workspace.figures):
        for path in remove_stale_temps(folder):
            log.info("removed %s, left by an interrupted write", path)
    changed = []
    readme = workspace.notes / "README.md"
    current = read_page(readme) if readme.exists() else readme_template()
    if write_atomic(readme, replace_blocks(current, readme_blocks(state, question), str(readme))):
        changed.append(readme)
    for experiment in state.experiments.values():
        page = workspace.experiments_pages / f"{experiment.id}.md"
        bodies = page_blocks(state, experiment)
        text = replace_blocks(read_page(page), bodies, str(page)) if page.exists() else new_page(experiment, bodies)
        if write_atomic(page, text):
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


def render_from_ledger(workspace: Workspace, question: str, figures: bool = True) -> tuple[ResearchState, list[Path]]:
    """Read notes/ledger.jsonl, fold it, re-render every page (and figure); the state and changed files."""
    from vibe_research.research.figures import render_figures
    from vibe_research.research.ledger import read
    from vibe_research.research.state import rebuild_state

    ledger = read(workspace.ledger)
    state = rebuild_state(ledger.records)
    changed = render_notes(workspace, state, question)
    if figures:
        changed += render_figures(workspace.figures, state)
    return state, changed
