"""Ways a weak model spoils a story, applied to real stories to test the heuristic judge."""

import random
import re

from vibe_research.research.judge.features import words

# a sentence with its trailing whitespace, so shuffling keeps the paragraph layout
_SENTENCE = re.compile(r"[^.!?]*[.!?]+[\"”']?\s*")
_WORD_SPAN = re.compile(r"[A-Za-z]+")


def stories(text: str) -> list[str]:
    return [story.strip() for story in text.split("<|endoftext|>") if story.strip()]


def _split(story: str) -> list[str]:
    pieces = _SENTENCE.findall(story)
    return pieces if "".join(pieces) == story else []


def shuffle_sentences(story: str, rng: random.Random) -> str | None:
    pieces = _split(story)
    if len(pieces) < 3:
        return None
    bodies = [piece.rstrip() for piece in pieces]
    gaps = [piece[len(piece.rstrip()) :] for piece in pieces]
    order = list(range(len(bodies)))
    while order == sorted(order):
        rng.shuffle(order)
    return "".join(bodies[i] + gap for i, gap in zip(order, gaps, strict=False)).rstrip()


def double_words(story: str, rng: random.Random, count: int = 2) -> str | None:
    spans = list(_WORD_SPAN.finditer(story))
    if len(spans) < 10:
        return None
    chosen = sorted(rng.sample(range(1, len(spans)), count), reverse=True)
    for index in chosen:
        span = spans[index]
        story = story[: span.end()] + " " + span.group(0) + story[span.end() :]
    return story


def repetition_loop(story: str, rng: random.Random, times: int = 3) -> str | None:
    """A sentence repeated, and the story carried on after the loop as a model would."""
    pieces = _split(story)
    if len(pieces) < 2:
        return None
    index = rng.randrange(len(pieces))
    sentence = pieces[index].rstrip() + " "
    return "".join([*pieces[:index], sentence * times, *pieces[index:]]).rstrip()


def truncate(story: str, rng: random.Random) -> str | None:
    """Cut mid-sentence between 40% and 80% of the story's words."""
    spans = list(_WORD_SPAN.finditer(story))
    if len(spans) < 20:
        return None
    for _ in range(20):
        cut = spans[rng.randrange(int(0.4 * len(spans)), int(0.8 * len(spans)))].end()
        text = story[:cut]
        if not text.rstrip().endswith((".", "!", "?")) and len(words(text)) < len(words(story)):
            return text
    return None


def splice_from(pool: list[str]):
    """What an n-gram model writes: each sentence after the first from another story, so every one
    reads well and together they tell nothing (a new cast each sentence, nothing carried over)."""
    sentences = [
        piece.strip() for story in pool for piece in _split(story) if len(piece.split()) >= 4
    ]

    def splice(story: str, rng: random.Random) -> str | None:
        pieces = _split(story)
        if len(pieces) < 4:
            return None
        return " ".join([pieces[0].strip(), *(rng.choice(sentences) for _ in pieces[1:])])

    return splice


CORRUPTIONS = {
    "shuffled sentences": shuffle_sentences,
    "doubled words": double_words,
    "repetition loop": repetition_loop,
    "truncation": truncate,
}
