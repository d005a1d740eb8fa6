"""The heuristic judge: the TinyStories rubric approximated from measurable features, no LLM.

This is a heuristic, not a reader. It cannot tell a clever plot from a dull one; it can tell
a clean, complete, fluent story from one with doubled words, ",," artifacts, repetition loops,
a missing ending, a scrambled order or characters that appear before they are introduced,
which are the failures that separate five-minute models (and that perplexity misses). Each
rubric field starts at 9, a clean story like those in the training data, and loses points for
the failures that belong to it:

- grammar: doubled words, punctuation artifacts, unbalanced quotes, low fluency under a
  Kneser-Ney model of the training stories (when a reference is given);
- consistency: names used before they are introduced, a story opening mid-scene, "Once upon a
  time" in the middle or "The moral of the story" before the end, a repeated sentence, and how
  its first tokens and its end compare with how training stories open and end;
- creativity: repeated word 4-grams and low distinct bigrams (loops and stock phrases);
- plot: a missing ending (no terminal punctuation, or stopped at the token limit), too few
  sentences to tell a story, repetition loops.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vibe_research.research.judge.features import TextFeatures, extract
from vibe_research.research.ledger import Sample, SampleScore

if TYPE_CHECKING:
    from vibe_research.research.judge.reference import Reference

HEURISTIC_NAME = "heuristic"
HEURISTIC_RUBRIC = "heuristic-1"


@dataclass(frozen=True)
class Fluency:
    """Natural-log probabilities under the reference, in three places."""

    body: float  # of the whole story, per UTF-8 byte (a unit that does not depend on the tokenizer)
    opening: float  # mean per token of the first tokens after the story boundary
    closing: float  # of the story boundary after the last token


def _clip(score: float) -> float:
    return round(min(10.0, max(1.0, score)), 2)


def _grammar(f: TextFeatures, fluency: Fluency | None, typical: Fluency | None) -> tuple[float, list[str]]:
    score, notes = 9.0, []
    if f.doubled_words:
        score -= min(4.0, 1.5 * f.doubled_words)
        notes.append(f"{f.doubled_words} doubled word(s)")
    if f.punctuation_artifacts:
        score -= min(4.0, 1.5 * f.punctuation_artifacts)
        notes.append(f"{f.punctuation_artifacts} punctuation artifact(s)")
    if f.unbalanced_quotes:
        score -= 1.0
        notes.append("an unclosed quotation")
    if fluency is not None and typical is not None:
        # a tenth of a nat per byte below typical training text costs a point
        gap = max(0.0, typical.body - fluency.body)
        score -= min(4.0, 10.0 * gap)
        if gap > 0.1:
            notes.append(f"disfluent ({fluency.body:.2f} nats/byte against {typical.body:.2f} for training stories)")
    return score, notes


def _consistency(f: TextFeatures, fluency: Fluency | None, typical: Fluency | None) -> tuple[float, list[str]]:
    score, notes = 9.0, []
    if f.names_used_before_introduced:
        score -= 2.0 * f.names_used_before_introduced
        notes.append("a character used before being introduced")
    if f.misplaced_formulas:
        score -= 1.5 * f.misplaced_formulas
        notes.append("an opening or closing formula in the middle of the story")
    if f.opens_mid_story:
        score -= 2.0
        notes.append("opens mid-scene")
    if f.longest_repeat > 1:
        score -= min(4.0, 1.5 * (f.longest_repeat - 1))
        notes.append(f"a sentence repeated {f.longest_repeat} times")
    if fluency is not None and typical is not None:
        # a story's first words and its end are where scrambled or cut stories give themselves away
        score += 0.25 * (fluency.opening - typical.opening) + 0.15 * (fluency.closing - typical.closing)
    return score, notes


def _creativity(f: TextFeatures) -> tuple[float, list[str]]:
    score, notes = 9.0, []
    # a loop that repeats every 4-gram costs 12 points; real stories repeat a few percent
    score -= 12.0 * f.repeated_4grams
    score -= 6.0 * max(0.0, 0.95 - f.distinct_2)
    if f.repeated_4grams > 0.1:
        notes.append(f"{f.repeated_4grams:.0%} of its 4-grams repeat")
    if f.words < 60:
        score -= 1.0
    return score, notes


def _plot(f: TextFeatures, finished: bool | None) -> tuple[float, list[str]]:
    score, notes = 9.0, []
    if not f.ends_cleanly or finished is False:
        score -= 3.0
        notes.append("no ending: it stops mid-sentence or at the token limit")
    if f.sentences < 4:
        score -= 4 - f.sentences
        notes.append(f"only {f.sentences} sentence(s)")
    if f.longest_repeat > 2:
        score -= 1.0
    return score, notes


@dataclass(frozen=True)
class HeuristicJudge:
    """Scores samples with features of the text and, given a reference, its fluency."""

    reference: "Reference | None" = None
    name: str = HEURISTIC_NAME

    @property
    def rubric_version(self) -> str:
        return HEURISTIC_RUBRIC if self.reference is None else f"{HEURISTIC_RUBRIC}+{self.reference.id}"

    def score(self, sample: Sample) -> SampleScore:
        features = extract(sample.text, sample.prompt)
        fluency = self.reference.fluency(sample.text) if self.reference else None
        typical = self.reference.typical if self.reference else None
        grammar, grammar_notes = _grammar(features, fluency, typical)
        consistency, consistency_notes = _consistency(features, fluency, typical)
        creativity, creativity_notes = _creativity(features)
        plot, plot_notes = _plot(features, sample.finished)
        problems = grammar_notes + consistency_notes + creativity_notes + plot_notes
        clean = f"clean, complete, {features.sentences} sentences, no repetition or artifacts"
        rationale = f"Heuristic: {'; '.join(problems) if problems else clean}."
        return SampleScore(prompt=sample.prompt, seed=sample.seed, grammar=_clip(grammar), creativity=_clip(creativity),
                           consistency=_clip(consistency), plot=_clip(plot), rationale=rationale)

    def compare(self, candidate: Sample, best: Sample) -> float:
        """1 if the candidate scores higher overall, 0 if lower, 0.5 if equal (no position to bias)."""
        mine, theirs = self.score(candidate).overall, self.score(best).overall
        return 1.0 if mine > theirs else 0.0 if mine < theirs else 0.5
