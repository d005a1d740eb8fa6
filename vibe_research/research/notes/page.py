"""The blocks of an experiment's page, notes/experiments/NNNN-slug.md, and its first layout.

What a reader wants from one experiment, in reading order: what was tried and why, the change,
the runs, the statistics against the best, what the stories look like, what the judge said,
the verdict, and what comes next.
"""

from vibe_research.research.notes.blocks import block
from vibe_research.research.notes.figures import has_loss_curves, loss_figure_name
from vibe_research.research.notes.markdown import (
    interval,
    num,
    page_link,
    short_commit,
    table,
    verdict_word,
)
from vibe_research.research.state.experiments import (
    ExperimentState,
    ResearchState,
    RunState,
    compare_with_best,
)
from vibe_research.research.state.ledger import Sample
from vibe_research.research.stats import (
    Comparison,
    Difference,
    describe,
    describe_gain,
    p_text,
    percent,
    sizes,
    summarize,
)

SAMPLES_SHOWN = 3  # stories quoted per page: enough to see a pattern, short enough to read
LOG_LINES_SHOWN = 15  # of a failed run's log tail: the traceback, not the whole training log


def _summary_block(experiment: ExperimentState) -> str:
    proposal = experiment.proposal
    if proposal is None:
        return "_No proposal recorded for this experiment._"
    when = proposal.at.strftime("%Y-%m-%d %H:%M UTC")
    source = proposal.source + (f" (move `{proposal.move}`)" if proposal.move else "")
    lines = [
        f"**{verdict_word(experiment).capitalize()}** · proposed by {source} on {when} · "
        f"commit {short_commit(proposal.commit)} · trains `{proposal.entry}`",
        "",
    ]
    if proposal.idea:
        lines += [f"*Prompted by:* {proposal.idea}", ""]
    lines += [f"**Hypothesis.** {proposal.hypothesis}"]
    for label, text in (
        ("Why", proposal.rationale),
        ("Expected effect", proposal.expected_effect),
        ("Risk", proposal.risk),
    ):
        if text:
            lines += ["", f"**{label}.** {text}"]
    return "\n".join(lines)


def _change_block(experiment: ExperimentState) -> str:
    diff = experiment.proposal.diff if experiment.proposal else ""
    if not diff.strip():
        return "_No code change: this measures experiments/ as it stood._"
    # a diff that itself holds a ``` fence (a markdown file, a docstring) needs a longer one
    fence = "````" if "```" in diff else "```"
    return f"{fence}diff\n{diff.rstrip()}\n{fence}"


def _judge_mean(run: RunState) -> str:
    return f"{run.judgement.overall:.2f}" if run.judgement and run.judgement.scores else "–"


def _runs_block(experiment: ExperimentState) -> str:
    if not experiment.runs:
        return "_No runs yet._"
    settings = any(run.setting for run in experiment.runs.values())
    rows = []
    for run in experiment.runs.values():
        end, evaluation = run.end, run.evaluation
        outcome = (
            "interrupted"
            if run.end is None
            else end.outcome + (f": {end.reason}" if end.reason else "")
        )
        rows.append(
            [
                run.run,
                *([f"`{run.setting}`" if run.setting else "defaults"] if settings else []),
                num(run.seed),
                num(end.steps if end else None),
                num(end.tokens if end else None),
                num(end.tokens_per_s, 0) if end else "–",
                num(evaluation.bpb if evaluation else None, 4),
                num(evaluation.perplexity if evaluation else None, 2),
                _judge_mean(run),
                outcome,
            ]
        )
    headers = [
        "run",
        *(["setting"] if settings else []),
        "seed",
        "steps",
        "tokens",
        "tokens/s",
        "bpb",
        "perplexity",
        "judge",
        "outcome",
    ]
    text = table(headers, rows)
    for line in (_provenance(experiment), _overhead(experiment)):
        if line:
            text += f"\n\n{line}"
    if has_loss_curves(experiment):
        text += f"\n\n![loss curves](../figures/{loss_figure_name(experiment.id)})"
    return text + "".join(_failure(run) for run in experiment.runs.values())


def _failure(run: RunState) -> str:
    """The end of a failed run's log, folded away: what someone fixing it reads first."""
    if run.end is None or run.end.outcome == "ok" or not run.end.log_tail.strip():
        return ""
    tail = "\n".join(run.end.log_tail.rstrip().splitlines()[-LOG_LINES_SHOWN:])
    # the same for a log tail that prints a fenced block
    fence = "````" if "```" in tail else "```"
    return (
        f"\n\n<details><summary>{run.run}: {run.end.outcome}, last lines of its log</summary>\n\n"
        f"{fence}text\n{tail}\n{fence}\n\n</details>"
    )


def _provenance(experiment: ExperimentState) -> str:
    """Where the numbers came from: device, library versions and the evaluator's fingerprint."""
    ends = [run.end for run in experiment.runs.values() if run.end]
    facts: dict[str, set[str]] = {}
    for end in ends:
        for label, value in (
            ("device", end.device),
            ("lm fingerprint", end.lm_fingerprint),
            *end.versions.items(),
        ):
            if value:
                facts.setdefault(label, set()).add(value)
    budgets = {f"{run.start.budget_s:g} s" for run in experiment.runs.values() if run.start}
    if budgets:
        facts["budget"] = budgets
    return " · ".join(f"{label} {', '.join(sorted(values))}" for label, values in facts.items())


def _overhead(experiment: ExperimentState) -> str:
    """How long the turn spent outside training and evaluation, and on what."""
    if not experiment.overhead:
        return ""
    record = experiment.overhead[-1]
    outside = sum(record.seconds.values())
    share = f" ({outside / record.turn_s:.1%})" if record.turn_s > 0 else ""
    phases = ", ".join(
        f"{phase} {seconds:.1f} s"
        for phase, seconds in sorted(record.seconds.items(), key=lambda item: -item[1])
    )
    return f"The turn took {record.turn_s:.0f} s, {outside:.1f} s of it outside training and evaluation{share}: {phases}."


def _difference_line(difference: Difference | None, unit: str) -> str:
    if difference is None:
        return f"- {unit}: not measured on both sides"
    if difference.low is None or difference.high is None:
        return f"- {unit}: {describe(difference)} → {difference.verdict}"
    return (
        f"- {unit}: {difference.diff:+.4f}, {percent(difference.confidence)} interval "
        f"[{difference.low:+.4f}, {difference.high:+.4f}], {difference.test}, {sizes(difference)}, "
        f"{p_text(difference.p_value)} → {difference.verdict}"
    )


def _comparison_lines(comparison: Comparison, against: str) -> list[str]:
    return [
        "",
        f"{against} (objective: {comparison.objective}; candidate minus best):",
        _difference_line(comparison.bpb, "bpb (lower is better)"),
        _difference_line(comparison.judge, "judge (higher is better)"),
    ]


def _variants_table(experiment: ExperimentState) -> str:
    """One row per setting of a sweep, in the order they ran; the chosen one in bold."""
    rows = []
    for setting, runs in experiment.variants.items():
        bpbs = [run.evaluation.bpb for run in runs if run.evaluation]
        perplexities = [run.evaluation.perplexity for run in runs if run.evaluation]
        judges = [run.judgement.overall for run in runs if run.judgement and run.judgement.scores]
        name = f"`{setting}`" if setting else "defaults"
        rows.append(
            [
                f"**{name}**" if setting == experiment.chosen else name,
                str(len(bpbs)),
                num(sum(bpbs) / len(bpbs), 4),
                num(sum(perplexities) / len(perplexities), 2),
                num(sum(judges) / len(judges), 2) if judges else "–",
            ]
        )
    return table(["setting", "seeds", "mean bpb", "mean perplexity", "mean judge"], rows)


def _statistics_block(state: ResearchState, experiment: ExperimentState, confidence: float) -> str:
    lines = []
    if experiment.is_sweep and experiment.variants:
        lines += [
            _variants_table(experiment),
            "",
            f"The sweep stands for its best setting, `{experiment.chosen}`: the lines below and the verdict use its runs.",
            "",
        ]
    if experiment.bpbs:
        bpb = summarize(experiment.bpbs, confidence)
        lines.append(
            f"- bpb over seeds: {interval(bpb, 4)}"
            + (f", std {bpb.std:.4f}" if bpb.std is not None else "")
        )
    if experiment.judge_scores:
        lines.append(
            f"- judge score over seeds: {interval(summarize(experiment.judge_scores, confidence), 2)}"
            f" (judge {experiment.judge_identity})"
        )
    decision = experiment.decision
    if decision and decision.comparison and decision.against:
        lines += _comparison_lines(
            decision.comparison,
            f"Against the best at the time, {page_link(decision.against, from_readme=False)}",
        )
        if decision.drift:
            lines += ["", f"Machine speed: {decision.drift}."]
        if decision.gain is not None:
            lines += [
                "",
                f"Where it came from: {describe_gain(decision.gain)}. How: {decision.gain.how}",
            ]
    elif (
        decision is None
        and (reference := state.reference(experiment.id))
        and (live := compare_with_best(state, experiment.id, "both", confidence))
    ):
        lines += _comparison_lines(
            live, f"Not decided yet; so far, against {page_link(reference.id, from_readme=False)}"
        )
    elif decision and decision.verdict == "baseline":
        lines += [
            "",
            "This is the baseline: later experiments are compared with it until one beats it.",
        ]
    return "\n".join(lines) if lines else "_No measurements yet._"


def _story(sample: Sample) -> str:
    text = sample.text
    if text.startswith(sample.prompt):
        text = text[len(sample.prompt) :]
    # the beginning in bold, so the reader sees where the model's own words start
    story = f"**{sample.prompt.strip()}**{' ' if text[:1] not in ('', ' ', ',', '.') else ''}{text.strip()}"
    return "\n".join(f"> {line}" if line else ">" for line in story.splitlines())


def _showcase_run(experiment: ExperimentState) -> RunState | None:
    """The measured run with the median bpb: its samples are typical, neither lucky nor unlucky."""
    runs = sorted(
        (run for run in experiment.chosen_runs if run.evaluation and run.evaluation.samples),
        key=lambda run: run.evaluation.bpb if run.evaluation else 0.0,
    )
    # the median run by bpb: neither the luckiest seed nor the worst speaks for the experiment
    return runs[len(runs) // 2] if runs else None


def _samples_block(experiment: ExperimentState) -> str:
    run = _showcase_run(experiment)
    if run is None or run.evaluation is None:
        return "_No samples yet._"
    scores = (
        {(score.prompt, score.seed): score for score in run.judgement.scores}
        if run.judgement
        else {}
    )
    setting = f", {run.setting}" if experiment.is_sweep else ""
    parts = [f"From run {run.run} (seed {run.seed}{setting}, median bpb of the seeds):"]
    for sample in run.evaluation.samples[:SAMPLES_SHOWN]:
        score = scores.get((sample.prompt, sample.seed))
        caption = (
            (
                f"*grammar {score.grammar:.0f}, creativity {score.creativity:.0f}, consistency "
                f"{score.consistency:.0f}, plot {score.plot:.0f}*"
            )
            if score
            else ""
        )
        parts.append(_story(sample) + (f"\n\n{caption}" if caption else ""))
    return "\n\n".join(parts)


def _judge_block(experiment: ExperimentState) -> str:
    judged = [run for run in experiment.chosen_runs if run.judgement and run.judgement.scores]
    if not judged:
        return "_Not judged yet._"
    scores = [score for run in judged for score in run.judgement.scores if run.judgement]
    first = judged[0].judgement
    means = {
        field: sum(getattr(s, field) for s in scores) / len(scores)
        for field in ("grammar", "creativity", "consistency", "plot")
    }
    of = f" of {experiment.chosen}" if experiment.is_sweep else ""
    paragraphs = [
        f"Judge: {first.judge} (rubric {first.rubric_version}), {len(scores)} samples over {len(judged)} seeds{of}. "
        "Means: " + ", ".join(f"{field} {value:.1f}" for field, value in means.items()) + "."
    ]
    pairwise = [
        run.judgement.pairwise for run in judged if run.judgement and run.judgement.pairwise
    ]
    if pairwise:
        wins = sum(p.wins for p in pairwise)
        total = sum(p.comparisons for p in pairwise)
        paragraphs.append(
            f"Pairwise against {pairwise[0].against}: {wins:g} points of {total} shared beginnings "
            "(each judged in both orders, a win 1, a tie 0.5); win rate per seed "
            + ", ".join(f"{p.win_rate:.0%} [{p.low:.0%}, {p.high:.0%}]" for p in pairwise)
            + "."
        )
    showcase = _showcase_run(experiment) or judged[0]
    rationales = [
        s for s in (showcase.judgement.scores if showcase.judgement else []) if s.rationale
    ][:SAMPLES_SHOWN]
    if rationales:
        paragraphs.append(
            "\n".join(f"- *{score.prompt.strip()}*: {score.rationale}" for score in rationales)
        )
    return "\n\n".join(paragraphs)


def _llm_failures(experiment: ExperimentState) -> list[str]:
    return [
        f"- the LLM failed at the {failure.stage} step ({failure.failure}): {failure.reason}"
        for failure in experiment.llm_failures
    ]


def _verdict_block(experiment: ExperimentState) -> str:
    decision = experiment.decision
    failures = _llm_failures(experiment)
    if decision is None:
        interrupted = experiment.interrupted_runs
        if interrupted:
            return f"_Not decided: {len(interrupted)} run(s) were interrupted; `vibe-research continue` offers to rerun them._"
        if failures:
            return "\n".join(
                ["_Not decided yet: the next turn judges and decides it._", "", *failures]
            )
        return "_Not decided yet._"
    changed_code = (
        experiment.proposal is not None
        and experiment.proposal.commit is not None
        and experiment.proposal.source != "baseline"
    )
    if changed_code:
        action = (
            "kept: the change stays in experiments/"
            if decision.kept
            else "discarded: the change was reverted by a new commit"
        )
    else:
        action = (
            "kept: later experiments are measured against it"
            if decision.kept
            else "discarded (runs only: nothing to revert)"
        )
    lines = [
        f"**{decision.verdict}**, {action}"
        + (f" ({short_commit(decision.commit)})" if decision.commit else "")
        + "."
    ]
    if decision.by == "researcher":
        lines.append("The researcher overrode the automatic verdict.")
    if decision.reason:
        lines.append(decision.reason)
    if decision.verdict == "indicative":
        lines.append(
            "Too few runs on a side for a test: the difference only indicates a direction. "
            "Rerun it with more seeds (`r` in the menu) to decide."
        )
    if decision.tag:
        lines.append(f"New best, tagged `{decision.tag}`.")
    if failures:
        lines.append("\n".join(failures))
    return "\n\n".join(lines)


def _next_block(experiment: ExperimentState) -> str:
    lines = []
    if experiment.suggestions:
        picked = experiment.pick.choice if experiment.pick else None
        for number, item in enumerate(experiment.suggestions.items, start=1):
            cost = f"~{item.cost_minutes:g} min" if item.cost_minutes is not None else ""
            facts = "; ".join(
                part
                for part in (
                    f"expected: {item.expected_effect}" if item.expected_effect else "",
                    cost,
                    f"risk: {item.risk}" if item.risk else "",
                )
                if part
            )
            mark = " ← **picked**" if picked == number else ""
            lines.append(
                f"{number}. **{item.title}**: {item.idea}"
                + (f" *Why:* {item.why}" if item.why else "")
                + (f" ({facts})" if facts else "")
                + mark
            )
    if experiment.pick and experiment.pick.choice is None:
        lines += ["", f'The researcher\'s own idea: "{experiment.pick.idea}"']
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


def page_blocks(
    state: ResearchState, experiment: ExperimentState, confidence: float = 0.95
) -> dict[str, str]:
    return {
        "summary": _summary_block(experiment),
        "change": _change_block(experiment),
        "runs": _runs_block(experiment),
        "statistics": _statistics_block(state, experiment, confidence),
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
    parts += [
        "## Your notes",
        "",
        "_Write here: text outside the vibe markers is yours and is never rewritten._",
        "",
    ]
    return "\n".join(parts)
