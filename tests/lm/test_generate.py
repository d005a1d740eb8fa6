"""Sampling: seeds, temperature, top-k, max tokens, stopping at the end-of-story token."""

import math

import numpy as np
import pytest
import torch
from lm_helpers import STORIES

from vibe_research.lm.errors import UserError
from vibe_research.lm.generate import SAMPLE_SEED, STORY_BEGINNINGS, sample, story_samples
from vibe_research.lm.tokenizer import load_tokenizer

BYTES = load_tokenizer("bytes")


class ByteFrequencies:
    """Byte frequencies of the test stories, whatever the context; the story never ends (eot has p = 0)."""

    vocab_size, tokenizer, context_length = BYTES.vocab_size, "bytes", 16

    def __init__(self) -> None:
        counts = np.bincount(
            [b for story in STORIES for b in story.encode()], minlength=self.vocab_size
        )
        self.log_probs = torch.from_numpy(
            counts / counts.sum()
        ).log()  # float64[V], -inf where unseen

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.log_probs.expand(*tokens.shape, self.vocab_size)


class EndsAfter:
    """A causal model that predicts 'a' until `after` tokens follow the prompt, then the end-of-story token."""

    vocab_size, tokenizer, context_length = BYTES.vocab_size, "bytes", 8

    def __init__(self, prompt_tokens: int, after: int) -> None:
        self.stop_at = (
            prompt_tokens + after
        )  # sequence length (eot + prompt + generated) at which to stop

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        out = torch.full((*tokens.shape, self.vocab_size), -math.inf)
        out[..., ord("a")] = 0.0
        # Position t of a window sees t+1 tokens; the windows here are never cut, so t+1 is the sequence length.
        positions = torch.arange(1, tokens.shape[1] + 1)
        out[:, positions >= self.stop_at] = -math.inf
        out[:, positions >= self.stop_at, BYTES.eot] = 0.0
        return out


def test_same_seed_same_story_other_seed_other_story() -> None:
    model = ByteFrequencies()
    first = sample(model, BYTES, ["Once"], [1], max_tokens=40)
    assert first == sample(model, BYTES, ["Once"], [1], max_tokens=40)
    assert first != sample(model, BYTES, ["Once"], [2], max_tokens=40)
    assert first[0].tokens == 40 and not first[0].finished and first[0].text.startswith("Once")


def test_batched_sampling_matches_one_at_a_time() -> None:
    model = ByteFrequencies()
    together = sample(model, BYTES, ["Once", "Tom saw a big dog and"], [5, 6], max_tokens=30)
    alone = [
        sample(model, BYTES, [prompt], [seed], max_tokens=30)[0]
        for prompt, seed in [("Once", 5), ("Tom saw a big dog and", 6)]
    ]
    assert together == alone


def test_greedy_and_top_1_agree() -> None:
    model = ByteFrequencies()
    greedy = sample(model, BYTES, ["Hi"], [0], temperature=0, max_tokens=10)[0]
    top1 = sample(model, BYTES, ["Hi"], [99], top_k=1, max_tokens=10)[0]
    most_common = chr(int(model.log_probs.argmax()))
    assert greedy.continuation == top1.continuation == most_common * 10


def test_stops_at_the_end_of_story_token() -> None:
    prompt = "Hi"
    [story] = sample(EndsAfter(len(prompt) + 1, after=3), BYTES, [prompt], [0], max_tokens=50)
    assert (
        story.finished
        and story.continuation == "aaa"
        and story.tokens == 4
        and story.text == "Hiaaa"
    )


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="temperature >= 0"):
        sample(ByteFrequencies(), BYTES, ["Hi"], [0], temperature=-1)


def test_story_beginnings_are_fixed_and_seeded() -> None:
    assert 20 <= len(STORY_BEGINNINGS) <= 30 and len(set(STORY_BEGINNINGS)) == len(STORY_BEGINNINGS)
    stories = story_samples(ByteFrequencies(), BYTES, 3, max_tokens=5)
    assert [story.prompt for story in stories] == list(STORY_BEGINNINGS[:3])
    assert [story.seed for story in stories] == [SAMPLE_SEED, SAMPLE_SEED + 1, SAMPLE_SEED + 2]
