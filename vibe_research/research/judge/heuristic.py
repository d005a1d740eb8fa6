"""The heuristic judge: the TinyStories rubric approximated from measurable features, no LLM.

This is a heuristic, not a reader. It cannot tell a clever plot from a dull one; it can tell
a clean, complete, fluent story from one with doubled words, ",," artifacts, repetition loops,
a missing ending, a scrambled order or characters that appear before they are introduced,
which are the failures that separate five-minute models (and that perplexity misses). Each
rubric field starts at 9, a clean story like those in the training data, and loses points for
the failures that belong to it; text that is mostly not letters and punctuation (what an
untrained model emits) is pulled toward 1 on every field:

- grammar: doubled words, punctuation artifacts, words glued together, unbalanced quotes, low
  fluency under a Kneser-Ney model of the training stories (when a reference is given);
- consistency: names used before they are introduced, a story opening mid-scene, "Once upon a
  time" in the middle or "The moral of the story" before the end, a repeated sentence, word
  salad (far less fluent than any real story), sentences that share no content with the ones
  before (low cohesion), characters named once and never again, and how its first tokens and its
  end compare with how training stories open and end;
- creativity: repeated word 4-grams and low distinct bigrams (loops and stock phrases);
- plot: a missing ending (no terminal punctuation, or stopped at the token limit), too few
  sentences to tell a story, repetition loops, events that do not connect (low cohesion).

The trigram reference cannot see past a few words, so text from an n-gram model reads as fluent
to it; cohesion and the named cast are what separate such text from a story (real stories:
cohesion 0.55 on average, 0.25 at the 10th percentile; 4-gram to 6-gram samples: 0.05).
"""

from dataclasses import dataclass

from vibe_research.research.judge.features import TextFeatures, extract
from vibe_research.research.judge.reference import Fluency, Reference
from vibe_research.research.state.ledger import Sample, SampleScore

HEURISTIC_NAME = "heuristic"
HEURISTIC_RUBRIC = "heuristic-4"  # 4: "Lily's" is Lily, "Let's" no name


# share of legible characters at and below which text counts as unreadable, and from which fully readable
UNREADABLE, READABLE = 0.6, 0.95
# nats per byte below the reference's typical fluency: within FLUENCY_SLACK is as fluent as real
# stories get (their 90th percentile is 0.12 under a trigram of TinyStories); past WORD_SALAD (their
# 99th percentile is 0.33) the text has stopped being a story
FLUENCY_SLACK, WORD_SALAD = 0.1, 0.35
# cohesion under this costs points (a tenth of real stories are below 0.25, n-gram text at 0.05)
COHESION_FLOOR = 0.3


def _clip(score: float, legibility: float) -> float:
    """Into 1..10, pulled toward 1 as the text stops being text: gibberish scores 1 on everything."""
    return round(1.0 + (min(10.0, max(1.0, score)) - 1.0) * legibility, 2)


def _legibility(f: TextFeatures) -> tuple[float, list[str]]:
    legibility = min(1.0, max(0.0, (f.legible - UNREADABLE) / (READABLE - UNREADABLE)))
    return legibility, [
        f"mostly not words ({f.legible:.0%} legible characters)"
    ] if legibility < 1.0 else []


def _grammar(
    f: TextFeatures, fluency: Fluency | None, typical: Fluency | None
) -> tuple[float, list[str]]:
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
    if f.glued_words:
        score -= min(3.0, 1.0 * f.glued_words)
        notes.append(f"{f.glued_words} word(s) run together")
    if fluency is not None and typical is not None:
        # past the spread of real stories (95% lie within 0.2 nats/byte of typical), a tenth of a
        # nat per byte costs a point
        gap = max(0.0, typical.body - fluency.body - FLUENCY_SLACK)
        score -= min(4.0, 10.0 * gap)
        if gap > 0.1:
            notes.append(
                f"disfluent ({fluency.body:.2f} nats/byte against {typical.body:.2f} for training stories)"
            )
    return score, notes


def _consistency(
    f: TextFeatures, fluency: Fluency | None, typical: Fluency | None
) -> tuple[float, list[str]]:
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
    if f.cohesion is not None and f.cohesion < COHESION_FLOOR:
        score -= min(3.0, 10.0 * (COHESION_FLOOR - f.cohesion))
        notes.append(
            f"its sentences barely connect ({f.cohesion:.0%} share a content word with the two before; "
            "real stories 55% on average)"
        )
    if len(f.one_off_names) > 1:
        score -= min(3.0, 0.75 * (len(f.one_off_names) - 1))
        notes.append(
            f"{len(f.one_off_names)} characters named once and never again ({', '.join(sorted(f.one_off_names)[:4])})"
        )
    if fluency is not None and typical is not None:
        # a story's first words and its end are where scrambled or cut stories give themselves away
        score += 0.25 * (fluency.opening - typical.opening) + 0.15 * (
            fluency.closing - typical.closing
        )
        # far less fluent than any real story: word salad, which cannot hold characters or events together
        salad = max(0.0, typical.body - fluency.body - WORD_SALAD)
        if salad > 0:
            score -= min(4.0, 4.0 * salad)
            notes.append("reads as word salad")
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
    if f.cohesion is not None and f.cohesion < COHESION_FLOOR:
        score -= min(2.0, 6.0 * (COHESION_FLOOR - f.cohesion))
    return score, notes


@dataclass(frozen=True)
class HeuristicJudge:
    """Scores samples with features of the text and, given a reference, its fluency."""

    reference: Reference | None = None
    name: str = HEURISTIC_NAME

    @property
    def rubric_version(self) -> str:
        return (
            HEURISTIC_RUBRIC
            if self.reference is None
            else f"{HEURISTIC_RUBRIC}+{self.reference.id}"
        )

    def score(self, sample: Sample) -> SampleScore:
        features = extract(sample.text, sample.prompt)
        fluency = self.reference.fluency(sample.text) if self.reference else None
        typical = self.reference.typical if self.reference else None
        grammar, grammar_notes = _grammar(features, fluency, typical)
        consistency, consistency_notes = _consistency(features, fluency, typical)
        creativity, creativity_notes = _creativity(features)
        plot, plot_notes = _plot(features, sample.finished)
        legibility, legibility_notes = _legibility(features)
        problems = (
            legibility_notes + grammar_notes + consistency_notes + creativity_notes + plot_notes
        )
        clean = f"clean, complete, {features.sentences} sentences, no repetition or artifacts"
        rationale = f"Heuristic: {'; '.join(problems) if problems else clean}."
        return SampleScore(
            prompt=sample.prompt,
            seed=sample.seed,
            grammar=_clip(grammar, legibility),
            creativity=_clip(creativity, legibility),
            consistency=_clip(consistency, legibility),
            plot=_clip(plot, legibility),
            rationale=rationale,
        )

    def compare(self, candidate: Sample, best: Sample) -> float:
        """1 if the candidate scores higher overall, 0 if lower, 0.5 if equal (no position to bias)."""
        mine, theirs = self.score(candidate).overall, self.score(best).overall
        return 1.0 if mine > theirs else 0.0 if mine < theirs else 0.5
