"""Sampling: seeds, temperature, top-k, max tokens, stopping at the end-of-story token, and the
checks of a model's incremental decoder (in this process: the isolation is tests/lm/test_isolation.py's)."""

import math

import numpy as np
import pytest
import torch
from lm_helpers import STORIES

from vibe_research.lm.entry import ModelRejected
from vibe_research.lm.errors import UserError
from vibe_research.lm.generate import SAMPLE_SEED, STORY_BEGINNINGS, Sample, sample, story_samples
from vibe_research.lm.sessions import LocalModel
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


def stories(model: object, prompts: list[str], seeds: list[int], **settings) -> list[Sample]:
    return sample(LocalModel(model), BYTES, prompts, seeds, **settings).samples


def test_same_seed_same_story_other_seed_other_story() -> None:
    model = ByteFrequencies()
    first = stories(model, ["Once"], [1], max_tokens=40)
    assert first == stories(model, ["Once"], [1], max_tokens=40)
    assert first != stories(model, ["Once"], [2], max_tokens=40)
    assert first[0].tokens == 40 and not first[0].finished and first[0].text.startswith("Once")


def test_samples_drawn_together_match_samples_drawn_alone() -> None:
    model = ByteFrequencies()
    together = stories(model, ["Once", "Tom saw a big dog and"], [5, 6], max_tokens=30)
    alone = [
        stories(model, [prompt], [seed], max_tokens=30)[0]
        for prompt, seed in [("Once", 5), ("Tom saw a big dog and", 6)]
    ]
    assert together == alone


def test_greedy_and_top_1_agree() -> None:
    model = ByteFrequencies()
    greedy = stories(model, ["Hi"], [0], temperature=0, max_tokens=10)[0]
    top1 = stories(model, ["Hi"], [99], top_k=1, max_tokens=10)[0]
    most_common = chr(int(model.log_probs.argmax()))
    assert greedy.continuation == top1.continuation == most_common * 10


def test_stops_at_the_end_of_story_token() -> None:
    prompt = "Hi"
    [story] = stories(EndsAfter(len(prompt) + 1, after=3), [prompt], [0], max_tokens=50)
    assert (
        story.finished
        and story.continuation == "aaa"
        and story.tokens == 4
        and story.text == "Hiaaa"
    )


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="temperature >= 0"):
        stories(ByteFrequencies(), ["Hi"], [0], temperature=-1)


def test_story_beginnings_are_fixed_and_seeded() -> None:
    assert 20 <= len(STORY_BEGINNINGS) <= 30 and len(set(STORY_BEGINNINGS)) == len(STORY_BEGINNINGS)
    drawn = story_samples(LocalModel(ByteFrequencies()), BYTES, 3, max_tokens=5).samples
    assert [story.prompt for story in drawn] == list(STORY_BEGINNINGS[:3])
    assert [story.seed for story in drawn] == [SAMPLE_SEED, SAMPLE_SEED + 1, SAMPLE_SEED + 2]


class Bigram:
    """A causal bigram over bytes (seeded), with an incremental decoder; `cheat_after` steps into a
    sequence the decoder puts all its mass on 'z' (a model choosing its own samples)."""

    vocab_size, tokenizer, context_length = BYTES.vocab_size, "bytes", 12

    def __init__(self, cheat_after: int | None = None) -> None:
        generator = torch.Generator().manual_seed(0)
        logits = torch.randn(
            self.vocab_size, self.vocab_size, generator=generator, dtype=torch.float64
        )
        self.table, self.cheat_after = torch.log_softmax(3 * logits, dim=-1), cheat_after

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens]

    def decoder(self) -> "BigramDecoder":
        return BigramDecoder(self)


class BigramDecoder:
    def __init__(self, model: Bigram) -> None:
        self.model, self.length = model, 0

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.length += len(tokens)
        rows = self.model.table[tokens].clone()
        if self.model.cheat_after is not None and self.length > self.model.cheat_after:
            rows[-1] = torch.full((self.model.vocab_size,), -math.inf, dtype=torch.float64)
            rows[-1, ord("z")] = 0.0
        return rows


def test_the_decoder_is_used_and_gives_what_logprobs_gives() -> None:
    """Sliding past the context (12 bytes) too: the window restarts the decoder."""
    with_decoder = sample(LocalModel(Bigram()), BYTES, ["Once upon"], [3], max_tokens=40)
    assert with_decoder.checks.incremental and with_decoder.checks.probe_rows > 0
    assert with_decoder.checks.steps_checked == 4 and with_decoder.checks.max_step_change < 1e-12

    class Plain(Bigram):
        decoder = None

    without = sample(LocalModel(Plain()), BYTES, ["Once upon"], [3], max_tokens=40)
    assert not without.checks.incremental and without.samples == with_decoder.samples


def test_a_decoder_that_chooses_its_own_tokens_is_caught_by_the_probe() -> None:
    with pytest.raises(ModelRejected, match=r"decoder\(\).step disagrees with logprobs"):
        sample(LocalModel(Bigram(cheat_after=1)), BYTES, ["Hi"], [0], max_tokens=20)


def test_a_decoder_that_cheats_only_after_the_probe_is_caught_by_the_spot_checks() -> None:
    """The probe here is the 3 tokens of eot + "Hi"; from the fourth token on the decoder cheats."""
    with pytest.raises(ModelRejected, match="a sampled step's distribution differs from logprobs"):
        sample(LocalModel(Bigram(cheat_after=3)), BYTES, ["Hi"], [0], max_tokens=20)
