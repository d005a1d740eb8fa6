"""Tokenizers: gpt2 offline, bpe:N trained with rustbpe, bytes; round trips and byte tables."""

import hashlib
import shutil
from pathlib import Path

import pytest
from lm_helpers import STORIES

from vibe_research.lm.errors import UserError
from vibe_research.lm.tokenizer import ensure_tokenizer, load_tokenizer, train_bpe

R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"


def test_gpt2_from_env_encodes_once_upon_a_time(gpt2_env: Path) -> None:
    tokenizer = load_tokenizer("gpt2")
    assert tokenizer.encode("Once upon a time") == [7454, 2402, 257, 640]
    assert (tokenizer.vocab_size, tokenizer.eot) == (50257, 50256)


def test_gpt2_from_tiktoken_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gpt2_ranks: Path
) -> None:
    monkeypatch.delenv("VIBE_GPT2_RANKS", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    shutil.copyfile(gpt2_ranks, tmp_path / hashlib.sha1(R50K_URL.encode()).hexdigest())
    assert load_tokenizer("gpt2").encode("Once upon a time") == [7454, 2402, 257, 640]


def test_gpt2_env_pointing_nowhere_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VIBE_GPT2_RANKS", str(tmp_path / "missing.tiktoken"))
    with pytest.raises(UserError, match="VIBE_GPT2_RANKS"):
        load_tokenizer("gpt2")


@pytest.mark.parametrize("spec", ["gpt2", "bytes", "bpe:300"])
def test_round_trip_and_byte_table(spec: str, gpt2_env: Path, tmp_path: Path) -> None:
    tokenizer = ensure_tokenizer(spec, tmp_path, "test-source", lambda: STORIES * 20)
    for story in STORIES:
        ids = tokenizer.encode(story)
        assert tokenizer.decode(ids) == story
        assert tokenizer.eot not in ids
        assert int(tokenizer.token_bytes[ids].sum()) == len(story.encode("utf-8"))
    assert tokenizer.token_bytes[tokenizer.eot] == 0
    assert (
        tokenizer.decode(tokenizer.encode("<|endoftext|>")) == "<|endoftext|>"
    )  # text, not the special


def test_bytes_has_256_byte_tokens_and_eot() -> None:
    tokenizer = load_tokenizer("bytes")
    assert (tokenizer.vocab_size, tokenizer.eot) == (257, 256)
    assert tokenizer.encode("hé") == [104, 0xC3, 0xA9]


def test_bpe_training_is_deterministic_and_sized(tmp_path: Path) -> None:
    texts = STORIES * 50
    first = train_bpe("bpe:320", texts, tmp_path / "a" / "bpe-320.tiktoken", "src")
    second = train_bpe("bpe:320", texts, tmp_path / "b" / "bpe-320.tiktoken", "src")
    assert (tmp_path / "a" / "bpe-320.tiktoken").read_bytes() == (
        tmp_path / "b" / "bpe-320.tiktoken"
    ).read_bytes()
    assert first.fingerprint == second.fingerprint
    assert (first.vocab_size, first.eot) == (320, 319)
    assert len(first.encode(STORIES[0])) < len(STORIES[0].encode("utf-8"))


def test_bpe_is_loaded_from_cache_and_retrained_for_new_text(tmp_path: Path) -> None:
    trained = ensure_tokenizer("bpe:300", tmp_path, "one", lambda: STORIES * 20)
    assert load_tokenizer("bpe:300", tmp_path).fingerprint == trained.fingerprint

    def fail() -> list[str]:
        raise AssertionError("an up-to-date BPE must not be retrained")

    assert ensure_tokenizer("bpe:300", tmp_path, "one", fail).fingerprint == trained.fingerprint
    other = ensure_tokenizer(
        "bpe:300", tmp_path, "two", lambda: [story[::-1] for story in STORIES] * 20
    )
    assert other.fingerprint != trained.fingerprint


def test_untrained_bpe_names_data_prepare(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="vibe-research data prepare --tokenizer bpe:512"):
        load_tokenizer("bpe:512", tmp_path)


@pytest.mark.parametrize("spec", ["gpt3", "bpe:", "bpe:12", "bpe:4096x", "BYTES"])
def test_unknown_spec_is_a_user_error(spec: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown tokenizer spec"):
        load_tokenizer(spec, tmp_path)


def test_bpe_larger_than_its_text_supports_is_smaller_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokenizer = ensure_tokenizer(
        "bpe:60000", tmp_path, "tiny", lambda: ["a tiny text, a tiny text"]
    )
    assert 257 <= tokenizer.vocab_size < 60000 and tokenizer.eot == tokenizer.vocab_size - 1
    assert f"supports only {tokenizer.vocab_size} tokens" in caplog.text
    assert tokenizer.decode(tokenizer.encode("a tiny text")) == "a tiny text"
    again = load_tokenizer("bpe:60000", tmp_path)
    assert again.vocab_size == tokenizer.vocab_size and again.fingerprint == tokenizer.fingerprint
