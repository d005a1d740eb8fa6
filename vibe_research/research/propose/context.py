"""The proposer's prompts, built from the notes and experiments/ on disk and fitted to a token budget.

Read from markdown files (notes/README.md, notes/experiments/*.md), not from the notes module,
so the prompt shows the model exactly what a person reads. When the prompt is over
llm.prompt_token_budget, parts go in this order: older experiment pages, experiment files other
than the entry, the oldest lines of the tried list, the last page, then the README's tail; the
prompt says what was left out.
"""

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vibe_research.llm.context import Message, ResearchContext
from vibe_research.llm.prompts import render
from vibe_research.llm.schemas import Suggestion, Tried
from vibe_research.llm.tokens import count_message_tokens
from vibe_research.lm.errors import UserError
from vibe_research.research.notes.markdown import SEALED_CLOSE, SEALED_OPEN
from vibe_research.research.settings import Settings
from vibe_research.research.state.experiments import ExperimentState, ResearchState
from vibe_research.research.stats import describe_gain
from vibe_research.research.workspace import Workspace

log = logging.getLogger(__name__)

RECENT_PAGES = 3  # latest experiment pages quoted in full; older ones reach the prompt as rows
TEXT_SUFFIXES = {".py", ".md", ".toml", ".json", ".txt", ".cfg", ".yaml", ".yml"}


@dataclass
class _Parts:
    """The variable parts of a prompt, and what was cut from each to fit."""

    readme: str
    pages: list[tuple[str, str]]  # (file name, text), newest first
    tried: list[str]  # one line per experiment, oldest first
    files: list[tuple[str, str]]  # (workspace-relative path, text), entry first
    cut: dict[str, int] = field(default_factory=dict)

    def sections(self) -> dict[str, str]:
        pages = (
            "\n\n".join(f"## {name}\n\n{text.strip()}" for name, text in self.pages) or "(none yet)"
        )
        if self.cut.get("pages"):
            pages += f"\n\n({self.cut['pages']} older experiment pages left out to fit the token budget; see the list below.)"
        tried = "\n".join(self.tried) or "(nothing yet: the next experiment is the first)"
        if self.cut.get("tried"):
            tried = f"({self.cut['tried']} older lines left out to fit the token budget)\n{tried}"
        files = "\n\n".join(_fenced(path, text) for path, text in self.files)
        if self.cut.get("files"):
            files += f"\n\n({self.cut['files']} more files in experiments/ left out to fit the token budget.)"
        readme = self.readme + (
            "\n\n(the rest of the README was left out to fit the token budget)"
            if self.cut.get("readme")
            else ""
        )
        return {"readme": readme, "pages": pages, "tried": tried, "files": files}


def tried(state: ResearchState) -> list[Tried]:
    """Every experiment as the proposer sees it: title, move, verdict and bpb change."""
    items = []
    for experiment in state.experiments.values():
        if experiment.proposal is None or experiment.proposal.source == "baseline":
            continue
        decision = experiment.decision
        reference = state.reference(experiment.id)
        delta = None
        if decision and decision.comparison and decision.comparison.bpb:
            delta = decision.comparison.bpb.diff
        elif experiment.bpbs and reference is not None and reference.bpbs:
            delta = _mean(experiment.bpbs) - _mean(reference.bpbs)
        items.append(
            Tried(
                title=experiment.title,
                verdict=decision.verdict if decision else "unfinished",
                move=experiment.proposal.move,
                delta_bpb=delta,
                detail=describe_gain(decision.gain) if decision and decision.gain else "",
            )
        )
    return items


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def base_runs(workspace: Workspace, entry: str, state: ResearchState) -> list[str]:
    """Run folders of `entry`'s current experiment, one per measured seed (what a fusion fuses),
    newest first, never best first: fusing only the luckiest seeds would credit the fusion with
    their luck. Only those on this machine (.vibe/runs is machine state: a fresh clone of the
    notes has the ledger's runs but not their folders, and a fusion of a missing run cannot start)."""
    current = state.current_for(entry)
    return run_folders(workspace, current) if current else []


def run_folders(workspace: Workspace, experiment: ExperimentState) -> list[str]:
    """The folders on this machine of `experiment`'s measured chosen runs, newest first."""
    measured = [run for run in experiment.chosen_runs if run.evaluation]
    measured.sort(key=lambda r: r.start.at.timestamp() if r.start else 0.0, reverse=True)
    return [
        str(workspace.runs / run.run) for run in measured if (workspace.runs / run.run).is_dir()
    ]


STEERING_HEADING = re.compile(r"^##\s+steering\s*$", re.IGNORECASE | re.MULTILINE)
_NEXT_SECTION = re.compile(r"^#{1,2}\s|^<!-- vibe:begin", re.MULTILINE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def read_steering(workspace: Workspace) -> str:
    """The researcher's Steering section of notes/README.md (its help comment left out); "" when
    there is none or it is empty. Read afresh at every turn."""
    text = _read(workspace.notes / "README.md") or ""
    heading = STEERING_HEADING.search(text)
    if heading is None:
        return ""
    rest = text[heading.end() :]
    end = _NEXT_SECTION.search(rest)
    return _COMMENT.sub("", rest[: end.start() if end else len(rest)]).strip()


def proposal_context(
    workspace: Workspace,
    settings: Settings,
    history: list[Tried],
    pick: Suggestion | None = None,
    idea: str | None = None,
    base_runs: list[str] | None = None,
    steering: str = "",
) -> ResearchContext:
    """What a proposer needs to propose the next experiment."""
    extra = {"direction": _direction(pick, idea), "seeds": ", ".join(map(str, _seeds(settings)))}
    return _context(
        workspace,
        settings,
        history,
        "propose.md",
        extra,
        pick=pick,
        idea=idea,
        base_runs=base_runs or [],
        steering=steering,
    )


def suggestion_context(
    workspace: Workspace,
    settings: Settings,
    history: list[Tried],
    base_runs: list[str] | None = None,
    steering: str = "",
) -> ResearchContext:
    """What a proposer needs to offer the next two or three steps."""
    extra = {"run_minutes": f"{settings.train.budget_s / 60:g}"}
    return _context(
        workspace,
        settings,
        history,
        "suggest.md",
        extra,
        pick=None,
        idea=None,
        base_runs=base_runs or [],
        steering=steering,
    )


def _seeds(settings: Settings) -> list[int]:
    return [settings.train.first_seed + i for i in range(settings.train.runs_per_proposal)]


def _context(
    workspace: Workspace,
    settings: Settings,
    history: list[Tried],
    template: str,
    extra: dict[str, str],
    *,
    pick: Suggestion | None,
    idea: str | None,
    base_runs: list[str],
    steering: str,
) -> ResearchContext:
    files = read_experiment_files(workspace)
    parts = _Parts(
        readme=_read(workspace.notes / "README.md")
        or "(no notes yet: the workspace has just been created)",
        pages=_recent_pages(workspace.experiments_pages),
        tried=[item.line() for item in history],
        files=sorted(files.items(), key=lambda item: (item[0] != settings.train.entry, item[0])),
    )
    system = render(
        "system.md", question=settings.research.question, budget_s=f"{settings.train.budget_s:g}"
    )
    if steering:
        # first, above everything else: the researcher's word outranks the notes and the history
        system = render("steering.md", steering=steering) + "\n" + system
    messages = fit_prompt(system, template, parts, extra, settings.llm.prompt_token_budget)
    return ResearchContext(
        messages=messages,
        files=files,
        history=history,
        seeds=_seeds(settings),
        budget_s=settings.train.budget_s,
        base_runs=base_runs,
        steering=steering,
        pick=pick,
        idea=idea,
    )


def fit_prompt(
    system: str, template: str, parts: _Parts, extra: dict[str, str], budget: int
) -> list[Message]:
    """The chat messages, with parts cut (see the module doc) until they fit `budget` tokens."""
    cuts = _cuts(parts)
    while True:
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": render(template, **parts.sections(), **extra)},
        ]
        tokens = count_message_tokens(messages)
        if tokens <= budget:
            log.info(
                "prompt %s: %d tokens (budget %d)%s",
                template,
                tokens,
                budget,
                f", cut {parts.cut}" if parts.cut else "",
            )
            return messages
        if not next(cuts, False):
            raise UserError(
                f"the prompt needs {tokens} tokens even cut to its core, over llm.prompt_token_budget = {budget}; "
                "raise it in vibe-research.toml or shorten notes/README.md"
            )


def _cuts(parts: _Parts) -> Iterator[bool]:
    """Each step removes a little more from `parts`, least needed first."""
    while len(parts.pages) > 1:
        parts.pages.pop()
        parts.cut["pages"] = parts.cut.get("pages", 0) + 1
        yield True
    while len(parts.files) > 1:
        parts.files.pop()
        parts.cut["files"] = parts.cut.get("files", 0) + 1
        yield True
    while parts.tried:
        drop = max(1, len(parts.tried) // 4)
        del parts.tried[:drop]
        parts.cut["tried"] = parts.cut.get("tried", 0) + drop
        yield True
    if parts.pages:
        parts.pages.pop()
        parts.cut["pages"] = parts.cut.get("pages", 0) + 1
        yield True
    while len(parts.readme) > 2_000:
        parts.readme = parts.readme[: len(parts.readme) // 2]
        parts.cut["readme"] = 1
        yield True


def read_experiment_files(workspace: Workspace) -> dict[str, str]:
    """Text files under experiments/, by workspace-relative path."""
    files: dict[str, str] = {}
    for path in sorted(workspace.experiments.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
            text = _read(path)
            if text is not None:
                files[path.relative_to(workspace.root).as_posix()] = text
    return files


def _recent_pages(folder: Path) -> list[tuple[str, str]]:
    pages = sorted(folder.glob("*.md"), reverse=True)[:RECENT_PAGES] if folder.is_dir() else []
    return [(page.name, text) for page in pages if (text := _read(page)) is not None]


_SEALED = re.compile(re.escape(SEALED_OPEN) + ".*?" + re.escape(SEALED_CLOSE), re.DOTALL)


def _read(path: Path) -> str | None:
    """A file as the prompt quotes it: numbers of the sealed test split replaced, so the LLM never
    sees them (notes/markdown.sealed marks them)."""
    try:
        return _SEALED.sub("(sealed)", path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        log.warning("%s is not UTF-8 text; left out of the prompt", path)
        return None


def _fenced(path: str, text: str) -> str:
    fence = "````" if "```" in text else "```"
    language = "python" if path.endswith(".py") else ""
    return f"## {path}\n\n{fence}{language}\n{text.rstrip()}\n{fence}"


def _direction(pick: Suggestion | None, idea: str | None) -> str:
    if idea:
        return f"The researcher's own idea, in their words:\n\n> {idea.strip()}\n\nTurn it into one proposal."
    if pick is not None:
        return (
            f"The researcher picked this next step:\n\n**{pick.title}**: {pick.idea}\n\n"
            f"Why: {pick.why}\nExpected: {pick.expected_effect}\n\nTurn it into one proposal."
        )
    return "No step was picked: choose the most promising next experiment yourself."
