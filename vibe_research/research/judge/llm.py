"""The LLM judge: the TinyStories paper's rubric as a JSON schema, and pairwise comparison.

The rubric follows Eldan and Li (2023), "TinyStories": the model was given a story beginning
and wrote the rest; the judge grades the part the model wrote for grammar, creativity,
consistency with the beginning and plot, 1 to 10 each, with a short rationale.
"""

import logging
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from vibe_research.research.state.ledger import Sample, SampleScore

if TYPE_CHECKING:
    from vibe_research.llm.client import LLMClient

log = logging.getLogger(__name__)

LLM_RUBRIC = "tinystories-1"
SEPARATOR = "***"

SYSTEM = (
    "You are a strict teacher grading short stories for young children. In each exercise a student was "
    "given the beginning of a story and had to complete it into a full story. The symbol *** separates the "
    "given beginning from the student's completion. Grade only the completion, but judge it against the "
    "beginning: pay special attention to whether the student correctly finishes a sentence that *** splits "
    "in the middle. Repetition, doubled words, stray punctuation such as ',,', characters that change name, "
    "and stories that stop without an ending all count against the student."
)
RUBRIC = (
    "{story}\n\nGrade the student's completion from 1 (very poor) to 10 (excellent) on four criteria:\n"
    "- grammar: is it grammatically correct and fluent?\n"
    "- creativity: is it imaginative, or a bland string of stock phrases?\n"
    "- consistency: is it consistent with the beginning and with itself (characters, objects, events)?\n"
    "- plot: does the story make sense and reach an ending?\n"
    "Give a rationale of one or two sentences naming the main strength or problem."
)
PAIRWISE = (
    "Two students completed the same beginning.\n\nStudent A:\n{a}\n\nStudent B:\n{b}\n\n"
    "Which completion is the better story overall (grammar, creativity, consistency with the beginning, "
    "plot)? Answer A, B, or tie only if they are truly equal, with a one-sentence rationale."
)


class RubricReply(BaseModel):
    """What the judge model must answer for one story."""

    model_config = ConfigDict(extra="forbid")
    grammar: int = Field(ge=1, le=10)
    creativity: int = Field(ge=1, le=10)
    consistency: int = Field(ge=1, le=10)
    plot: int = Field(ge=1, le=10)
    rationale: str = Field(max_length=600, description="one or two sentences")


class PairwiseReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    winner: Literal["A", "B", "tie"]
    rationale: str = Field(max_length=600)


def marked_story(sample: Sample) -> str:
    """The story with *** between the given beginning and the model's completion."""
    if sample.text.startswith(sample.prompt):
        return f"{sample.prompt}{SEPARATOR}{sample.text[len(sample.prompt) :]}"
    return f"{sample.prompt}{SEPARATOR}{sample.text}"


class LLMJudge:
    """Grades samples with a chat model through the project's LLM client."""

    def __init__(self, client: "LLMClient", model: str) -> None:
        self.client = client
        self.name = model
        self.rubric_version = LLM_RUBRIC

    def score(self, sample: Sample) -> SampleScore:
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": RUBRIC.format(story=marked_story(sample))},
        ]
        reply = self.client.structured(messages, RubricReply, model=self.name)
        return SampleScore(
            prompt=sample.prompt,
            seed=sample.seed,
            grammar=reply.grammar,
            creativity=reply.creativity,
            consistency=reply.consistency,
            plot=reply.plot,
            rationale=reply.rationale,
        )

    def _prefers_first(self, first: Sample, second: Sample) -> float:
        """1 if the judge prefers `first` shown as A, 0 if B, 0.5 for a tie."""
        messages = [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": PAIRWISE.format(a=marked_story(first), b=marked_story(second)),
            },
        ]
        reply = self.client.structured(messages, PairwiseReply, model=self.name)
        return {"A": 1.0, "B": 0.0, "tie": 0.5}[reply.winner]

    def compare(self, candidate: Sample, best: Sample) -> float:
        """The candidate's points over both orders, in [0, 1]: asking twice cancels position bias."""
        as_a = self._prefers_first(candidate, best)
        as_b = 1.0 - self._prefers_first(best, candidate)
        return (as_a + as_b) / 2.0
