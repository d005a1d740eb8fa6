"""Surface features of a story that betray a weak model: pure functions of the text.

Each one targets a failure the seed saw or that small models are known for: doubled words and
punctuation artifacts (",," and "his his" from shallow fusion), repetition loops, low lexical
variety, stories cut off mid-sentence, stories that open mid-scene, characters whose names are
used before they are introduced, and the failure of n-gram models and barely trained
transformers: text fluent over a few words whose sentences do not hold together (low cohesion,
a new name in every sentence, words glued together such as "bigHer").
"""

import itertools
import re
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
# what story text is made of; an untrained model emits bytes that are none of these
_LEGIBLE = re.compile(r"[A-Za-z0-9\s.,!?'\"’‘“”:;()-]")
# a sentence ends at . ! or ? (optionally inside a closing quote) followed by space or the end
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”']?(?=\s|$)")
_ARTIFACT = re.compile(
    r",\s*,|(?<!\.)\.\.(?!\.)|,\s*\.|\.\s*,|\s[,.!?;:](?!\.)|[!?]{3,}|;\s*;|\(\s*\)"
)
_DOUBLED = re.compile(r"\b([A-Za-z]+)\s+\1\b", re.IGNORECASE)
# repetitions people do write ("very very", "again and again" is not doubled): not artifacts
_DOUBLE_OK = {
    "very",
    "so",
    "far",
    "bye",
    "ha",
    "no",
    "yes",
    "yay",
    "hee",
    "knock",
    "chop",
    "la",
    "beep",
    "boo",
    "tick",
    "tock",
    "ding",
    "dong",
    "woof",
    "meow",
    "quack",
    "moo",
    "hop",
    "buzz",
    "zoom",
    "more",
    "tap",
    "had",
    "that",
    "round",
    "up",
    "down",
}
_ENDINGS = (".", "!", "?", '."', '!"', '?"', ".”", "!”", "?”", ".'", "!'", "?'")
# a story that starts with these has lost its beginning: they refer back to something untold
_MID_STORY_OPENERS = {
    "he",
    "she",
    "they",
    "it",
    "his",
    "her",
    "their",
    "them",
    "then",
    "but",
    "so",
    "and",
    "after",
    "finally",
    "suddenly",
    "later",
    "now",
    "together",
    "from",
    "also",
    "again",
    "soon",
    "because",
}
_INTRODUCERS = {"named", "called"}
# words whose 's is "us" or "is" rather than a possessive: "Let's go", "Here's"
_CONTRACTED = {"let", "here", "there", "that", "what", "where", "who", "it", "he", "she"}
# two words run together by a subword model: lower case straight into a capitalised word
_GLUED = re.compile(r"\b[a-z]{2,}[A-Z][a-z]+")
# words that carry no content of their own: what is left is what a story is about (Lily, ball, park)
_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "so",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "as",
        "is",
        "was",
        "were",
        "be",
        "been",
        "are",
        "am",
        "it",
        "its",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "hers",
        "their",
        "him",
        "i",
        "you",
        "we",
        "my",
        "your",
        "our",
        "me",
        "us",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "then",
        "when",
        "what",
        "who",
        "how",
        "why",
        "where",
        "which",
        "not",
        "no",
        "yes",
        "do",
        "did",
        "does",
        "had",
        "has",
        "have",
        "will",
        "would",
        "can",
        "could",
        "should",
        "just",
        "very",
        "too",
        "all",
        "one",
        "some",
        "any",
        "into",
        "out",
        "up",
        "down",
        "over",
        "about",
        "after",
        "before",
        "again",
        "because",
        "if",
        "than",
        "said",
        "says",
        "say",
        "went",
        "go",
        "going",
        "get",
        "got",
        "like",
        "liked",
        "loved",
        "love",
        "wanted",
        "want",
        "see",
        "saw",
        "look",
        "looked",
        "day",
        "time",
        "once",
        "upon",
        "little",
        "big",
        "very",
        "much",
        "many",
        "more",
        "felt",
        "feel",
        "happy",
        "sad",
    ]
)
_OPENING_FORMULA = re.compile(r"\bonce upon a time\b", re.IGNORECASE)
_CLOSING_FORMULA = re.compile(
    r"\b(the moral of the story|from that day on|happily ever after|the end\b)", re.IGNORECASE
)
# capitalised words that are not names even in mid-sentence
_NOT_NAMES = {
    "i",
    "mom",
    "dad",
    "mommy",
    "daddy",
    "grandma",
    "grandpa",
    "mr",
    "mrs",
    "miss",
    "sir",
    "god",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "christmas",
    "the",
    "a",
    "an",
    "once",
    "one",
    "they",
    "he",
    "she",
    "it",
    "we",
    "you",
    "oh",
    "yes",
    "no",
}


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def sentences(text: str) -> list[str]:
    parts = [part.strip() for part in _SENTENCE_END.split(text)]
    return [part for part in parts if part]


@dataclass(frozen=True)
class TextFeatures:
    words: int
    sentences: int
    doubled_words: int  # adjacent repeats such as "his his", minus ones people write ("very very")
    punctuation_artifacts: int  # ",,", " ,", ". ." and the like
    repeated_4grams: float  # share of word 4-grams that already occurred earlier in the story
    longest_repeat: (
        int  # most times one sentence occurs: a repetition loop repeats a whole sentence
    )
    distinct_2: float  # distinct word bigrams / bigrams
    ends_cleanly: bool  # ends with terminal punctuation
    opens_mid_story: bool  # the first word refers back to something untold ("She", "Then", ...)
    names_used_before_introduced: int  # "Lily was sad. ... a girl named Lily" order
    misplaced_formulas: (
        int  # "Once upon a time" after the opening, "The moral of the story" before the end
    )
    unbalanced_quotes: bool
    legible: (
        float  # share of the model's own characters that are letters, digits, spaces or punctuation
    )
    # share of sentences after the first that share a content word with one of the two before
    # (None under three sentences): real stories 0.54 on average, n-gram text under 0.1
    cohesion: float | None
    one_off_names: tuple[
        str, ...
    ]  # names (capitalised mid-sentence) mentioned once and never again
    glued_words: int  # "forHer", "bigHer": two words run together


def _doubled(text: str) -> int:
    return sum(1 for match in _DOUBLED.finditer(text) if match.group(1).lower() not in _DOUBLE_OK)


def _repeated_4grams(tokens: list[str]) -> float:
    grams = [tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


def _distinct_2(tokens: list[str]) -> float:
    grams = list(itertools.pairwise(tokens))
    return len(set(grams)) / len(grams) if grams else 1.0


def _name(token: str) -> str | None:
    """The name a capitalised word stands for ("Lily's" -> "Lily"), or None: lower case, a
    contraction ("Let's", "Don't", "I'm") or a word that is capitalised but names no one."""
    if not token[0].isupper():
        return None
    base, _, suffix = token.partition("'")
    if suffix not in ("", "s"):
        return None
    lower = base.lower()
    if lower in _NOT_NAMES or lower in _FUNCTION_WORDS or (suffix and lower in _CONTRACTED):
        return None
    return base


def _names_used_before_introduced(text: str) -> int:
    """Names whose introduction ("named Lily") comes after an earlier use of the name."""
    tokens = words(text)
    first_use: dict[str, int] = {}
    introduced_at: dict[str, int] = {}
    for index, token in enumerate(tokens):
        name = _name(token)
        if name is None:
            continue
        if index > 0 and tokens[index - 1].lower() in _INTRODUCERS:
            introduced_at.setdefault(name, index)
        first_use.setdefault(name, index)
    return sum(1 for name, at in introduced_at.items() if first_use[name] < at)


def _misplaced_formulas(story_sentences: list[str]) -> int:
    late_openings = sum(bool(_OPENING_FORMULA.search(sentence)) for sentence in story_sentences[1:])
    early_closings = sum(
        bool(_CLOSING_FORMULA.search(sentence)) for sentence in story_sentences[:-2]
    )
    return late_openings + early_closings


def _opens_mid_story(text: str) -> bool:
    tokens = words(text)
    return bool(tokens) and tokens[0].lower() in _MID_STORY_OPENERS


def _content(sentence: str) -> set[str]:
    return {
        word.lower().removesuffix("s")
        for word in words(sentence)
        if len(word) > 2 and word.lower() not in _FUNCTION_WORDS
    }


def _cohesion(story_sentences: list[str]) -> float | None:
    content = [_content(sentence) for sentence in story_sentences]
    if len(content) < 3:
        return None
    linked = sum(
        bool(content[i] & (content[i - 1] | (content[i - 2] if i >= 2 else set())))
        for i in range(1, len(content))
    )
    return linked / (len(content) - 1)


def _one_off_names(text: str) -> tuple[str, ...]:
    """Names (capitalised somewhere other than a sentence's start) that occur exactly once."""
    mentions: Counter[str] = Counter()
    mid_sentence: set[str] = set()
    for sentence in sentences(text):
        tokens = words(sentence)
        for index, token in enumerate(tokens):
            name = _name(token)
            if name is not None:
                mentions[name] += 1
                if index > 0:
                    mid_sentence.add(name)
    return tuple(name for name in mid_sentence if mentions[name] == 1)


def _legible(text: str, prompt: str) -> float:
    own = text[len(prompt) :] if prompt and text.startswith(prompt) else text
    return len(_LEGIBLE.findall(own)) / len(own) if own else 1.0


def extract(text: str, prompt: str = "") -> TextFeatures:
    """Features of `text`; with a `prompt` the opening is the prompt's, so it is not held against the model."""
    tokens = [token.lower() for token in words(text)]
    story_sentences = sentences(text)
    counts = Counter(sentence.lower() for sentence in story_sentences if len(sentence.split()) >= 3)
    return TextFeatures(
        words=len(tokens),
        sentences=len(story_sentences),
        doubled_words=_doubled(text),
        punctuation_artifacts=len(_ARTIFACT.findall(text)),
        repeated_4grams=_repeated_4grams(tokens),
        longest_repeat=max(counts.values(), default=0),
        distinct_2=_distinct_2(tokens),
        ends_cleanly=text.rstrip().endswith(_ENDINGS),
        opens_mid_story=not prompt and _opens_mid_story(text),
        names_used_before_introduced=_names_used_before_introduced(text),
        misplaced_formulas=_misplaced_formulas(story_sentences),
        unbalanced_quotes=(text.count('"') % 2 == 1) or (text.count("“") != text.count("”")),
        legible=_legible(text, prompt),
        cohesion=_cohesion(story_sentences),
        one_off_names=_one_off_names(text),
        glued_words=len(_GLUED.findall(text)),
    )
