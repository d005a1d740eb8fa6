"""The blocks of notes/README.md: the question, the current best, the leaderboard, the timeline."""

from vibe_research.research.notes.figures import PROGRESS_FIGURE
from vibe_research.research.notes.markdown import (
    interval,
    num,
    page_link,
    sealed,
    short_commit,
    table,
    verdict_word,
)
from vibe_research.research.state.experiments import (
    ExperimentState,
    LeaderboardRow,
    ResearchState,
    leaderboard,
    setting_pairs,
    variant_overrides,
)
from vibe_research.research.state.ledger import PickRecord


def _best_block(state: ResearchState, confidence: float) -> str:
    best = state.best_experiment
    if best is None:
        return "_No best yet: the first `vibe-research continue` measures the baseline._"
    rows = {row.experiment: row for row in leaderboard(state, confidence)}
    row = rows[best.id]
    perplexities = [run.evaluation.perplexity for run in best.chosen_runs if run.evaluation]
    tokenizers = sorted({run.evaluation.tokenizer for run in best.chosen_runs if run.evaluation})
    decision = best.decision
    commit = best.proposal.commit if best.proposal else None
    lines = [
        f"**{best.title}** ({page_link(best.id)}), "
        + (f"commit {short_commit(commit)}" if commit else "runs only, no change to experiments/")
        + (f", tag `{decision.tag}`" if decision and decision.tag else ""),
        "",
        f"- validation bits per byte: **{interval(row.bpb, 4)}** "
        + (
            f"(mean over {row.runs} seeds, {confidence:.0%} t interval)"
            if row.runs > 1
            else "(one run)"
        ),
        *_sealed_lines(best, row),
        f"- perplexity: {num(sum(perplexities) / len(perplexities), 2) if perplexities else '–'}"
        + (f" per {', '.join(tokenizers)} token" if tokenizers else ""),
        f"- judge score: {interval(row.judge, 2)} (1 to 10)",
    ]
    overrides = _overrides(best)
    lines.append(
        f"- trains `{best.entry}`"
        + (f" with {overrides}" if overrides else ", its defaults at that commit")
    )
    others = [
        (entry, state.experiments[e]) for entry, e in sorted(state.current.items()) if e != best.id
    ]
    if others:
        lines += [
            "",
            "Where each other experiment script stands (its latest kept experiment, what its changes are measured against):",
            "",
        ]
        lines += [
            f"- `{entry}`: {page_link(e.id)} {e.title}"
            + (f", bpb {sum(e.bpbs) / len(e.bpbs):.4f} over {len(e.bpbs)} seeds" if e.bpbs else "")
            for entry, e in others
        ]
    return "\n".join(lines)


def _sealed_lines(best: ExperimentState, row: LeaderboardRow) -> list[str]:
    """The sealed test split's number of the best beside its valid one, and the gap: how much
    the choices made on valid flattered it."""
    rejected = best.test_rejected
    left_out = (
        f"; {len(rejected)} of its {len(best.chosen_runs)} runs not scored: "
        + "; ".join(f"{r.run} ({r.outcome}: {r.reason})" for r in rejected)
        if rejected
        else ""
    )
    head = "- sealed test split (scored once, when it became the best; never shown to the LLM): "
    if row.test_bpb is None or row.bpb is None:
        return [head + f"no score{left_out}"] if rejected else []
    gap = row.test_bpb.mean - row.bpb.mean
    return [head + sealed(f"**{interval(row.test_bpb, 4)}** bpb, {gap:+.4f} from valid") + left_out]


def _overrides(experiment: ExperimentState) -> str:
    """The overrides the best's numbers were measured with (a sweep's chosen setting)."""
    runs = experiment.chosen_runs
    start = runs[0].start if runs else None
    pairs = setting_pairs(variant_overrides(start.overrides)) if start else []
    return ", ".join(f"`{pair}`" for pair in pairs)


def _test_cell(row: LeaderboardRow) -> str:
    if row.test_bpb is None or row.bpb is None:
        return "–"
    return f"{row.test_bpb.mean:.4f} ({row.test_bpb.mean - row.bpb.mean:+.4f})"


def _leaderboard_block(state: ResearchState, confidence: float) -> str:
    rows = leaderboard(state, confidence)
    if not rows:
        return "_Nothing measured yet._"
    tested = any(row.test_bpb for row in rows)
    body = [
        [
            str(row.rank),
            ("★ " if row.best else "") + page_link(row.experiment),
            row.title + (f" (best: `{row.setting}`)" if row.setting else ""),
            interval(row.bpb, 4),
            *([sealed(_test_cell(row))] if tested else []),
            interval(row.judge, 2),
            f"{row.win_rate:.0%}" if row.win_rate is not None else "–",
            str(row.runs),
            verdict_word(state.experiments[row.experiment]),
        ]
        for row in rows
    ]
    level = f"{confidence:.0%} CI"
    board = table(
        [
            "#",
            "experiment",
            "title",
            f"bpb ({level})",
            *(["test bpb (gap)"] if tested else []),
            f"judge ({level})",
            "win rate",
            "seeds",
            "verdict",
        ],
        body,
    )
    measured = any(row.bpb for row in rows)
    return (
        f"{board}\n\n![progress over experiments](figures/{PROGRESS_FIGURE})" if measured else board
    )


def _timeline_block(state: ResearchState) -> str:
    if not state.experiments:
        return "_No experiments yet._"
    lines = []
    for experiment in state.experiments.values():
        first = experiment.proposal.at if experiment.proposal else None
        when = first.strftime("%Y-%m-%d %H:%M") if first else "????"
        bpb = experiment.bpbs
        measured = (
            f", bpb {sum(bpb) / len(bpb):.4f} over {len(bpb)} seed{'s' if len(bpb) != 1 else ''}"
            if bpb
            else ""
        )
        lines.append(
            f"- {when} · {page_link(experiment.id)} **{experiment.title}**: {verdict_word(experiment)}{measured}"
        )
        if experiment.interrupted_runs:
            lines.append(
                f"  - interrupted: {', '.join(run.run for run in experiment.interrupted_runs)}"
            )
        if experiment.picks:
            lines.append(f"  - next: {'; then '.join(map(_pick_text, experiment.picks))}")
    return "\n".join(lines)


def _pick_text(pick: PickRecord) -> str:
    who = "picked automatically" if pick.by == "auto" else "the researcher picked"
    if pick.choice is None:
        return f'the researcher\'s own idea: "{pick.idea}"'
    return f"{who} #{pick.choice}, {pick.title}"


def readme_blocks(state: ResearchState, question: str, confidence: float = 0.95) -> dict[str, str]:
    return {
        "question": f"> {question}",
        "best": _best_block(state, confidence),
        "leaderboard": _leaderboard_block(state, confidence),
        "timeline": _timeline_block(state),
    }
