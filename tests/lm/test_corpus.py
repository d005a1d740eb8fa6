"""Story sources: files (.txt, .jsonl, .parquet, globs), the hub failing fast offline, synthetic."""

import json
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest
from lm_helpers import STORIES, write_txt

from vibe_research.lm.corpus import DataSource, files_split, load_corpus, read_story_file
from vibe_research.lm.errors import UserError
from vibe_research.lm.synthetic import generate_stories


def test_txt_in_tinystories_layout(tmp_path: Path) -> None:
    assert read_story_file(write_txt(tmp_path / "s.txt", STORIES)) == STORIES


def test_real_valid_file_has_500_stories(tinystories: Path) -> None:
    stories = read_story_file(tinystories / "valid.txt")
    assert len(stories) == 500
    assert all(story == story.strip() and story for story in stories)


def test_jsonl_and_parquet_with_a_text_column(tmp_path: Path) -> None:
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"story": story, "id": i}) + "\n" for i, story in enumerate(STORIES))
    )
    parquet = tmp_path / "s.parquet"
    pyarrow.parquet.write_table(pyarrow.table({"story": STORIES}), parquet)
    assert read_story_file(jsonl, "story") == STORIES
    assert read_story_file(parquet, "story") == STORIES
    with pytest.raises(UserError, match="no column 'text'"):
        read_story_file(parquet)
    with pytest.raises(UserError, match=r"s.jsonl:1: no string field 'text'"):
        read_story_file(jsonl)


def test_globs_are_sorted_and_fingerprint_follows_content(tmp_path: Path) -> None:
    write_txt(tmp_path / "train-b.txt", STORIES[1:])
    write_txt(tmp_path / "train-a.txt", STORIES[:1])
    split = files_split("train", ["train-*.txt"], "text", tmp_path)
    assert list(split.texts()) == STORIES and split.count == 3
    assert files_split("train", ["train-*.txt"], "text", tmp_path).fingerprint == split.fingerprint
    write_txt(tmp_path / "train-b.txt", STORIES[2:])
    assert files_split("train", ["train-*.txt"], "text", tmp_path).fingerprint != split.fingerprint


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty corpus"),
        (b"\n<|endoftext|>\n  \n<|endoftext|>\n", "empty corpus"),
        (b"Once upon a time there was a cat.\nThe end.\n", "no <|endoftext|> separators"),
        (b"Once upon a time \xff\xfe a cat.\n<|endoftext|>\n", "not UTF-8 text"),
    ],
)
def test_bad_txt_files(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "bad.txt").write_bytes(content)
    with pytest.raises(UserError, match=message):
        files_split("train", ["bad.txt"], "text", tmp_path)


def test_limit_keeps_the_first_train_stories(tmp_path: Path) -> None:
    write_txt(tmp_path / "train.txt", STORIES)
    write_txt(tmp_path / "valid.txt", STORIES)
    corpus = load_corpus(DataSource(train=["train.txt"], valid="valid.txt", limit=2), tmp_path)
    assert list(corpus.train.texts()) == STORIES[:2] and corpus.valid.count == 3
    assert (
        corpus.train.fingerprint
        != files_split("train", ["train.txt"], "text", tmp_path).fingerprint
    )


def test_missing_path_and_unsupported_type(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        files_split("train", ["nothing-*.txt"], "text", tmp_path)
    (tmp_path / "s.csv").write_text("text\nhello\n")
    with pytest.raises(UserError, match="unsupported file type"):
        files_split("train", ["s.csv"], "text", tmp_path)


def test_files_source_needs_a_valid_file(tmp_path: Path) -> None:
    write_txt(tmp_path / "train.txt", STORIES)
    with pytest.raises(UserError, match="`valid` is not set"):
        load_corpus(DataSource(source="files", train=["train.txt"]), tmp_path)


def test_synthetic_source(tmp_path: Path) -> None:
    corpus = load_corpus(
        DataSource(source="synthetic", synthetic_train_stories=50, synthetic_valid_stories=10),
        tmp_path,
    )
    assert (corpus.train.kind, corpus.train.count, corpus.valid.count) == ("synthetic", 50, 10)
    assert len(list(corpus.train.texts())) == 50
    assert corpus.train.fingerprint != corpus.valid.fingerprint


def test_synthetic_stories_are_deterministic_varied_and_split_apart() -> None:
    train = generate_stories("0:train", 0, 200)
    assert train == generate_stories("0:train", 0, 200)
    assert generate_stories("0:train", 100, 5) == train[100:105]
    assert len(set(train)) == 200
    assert not set(generate_stories("0:valid", 0, 200)) & set(train)
    assert any("learned something" in story for story in train)  # sometimes a moral
    assert all(story.count("\n\n") >= 2 for story in train)  # setting, problem, resolution
