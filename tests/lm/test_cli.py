"""`data prepare`, `evaluate` and `sample` through the installed console script, good input and bad."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lm_helpers import STORIES, run, vibe, write_txt

import vibe_research.lm.reference as reference

REFERENCE = str(Path(reference.__file__))


def workspace(tmp_path: Path, settings: str = "") -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "vibe-research.toml").write_text(settings)
    return root


def cache_files(root: Path) -> list[Path]:
    return [path for path in (root / ".vibe").rglob("*") if path.is_file()]


def assert_one_line_error(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, tinystories: Path) -> Path:
    """A workspace on the real TinyStories files with bpe:4096 caches, plus unigram and peeking runs."""
    root = workspace(tmp_path_factory.mktemp("prepared"))
    done = vibe(
        "data", "prepare", "--tokenizer", "bpe:4096", cwd=root, env={"VIBE_DATA": str(tinystories)}
    )
    assert done.returncode == 0, done.stderr
    for kind in ("unigram", "peeking"):
        done = run(
            [
                sys.executable,
                "-m",
                "vibe_research.lm.reference",
                "--out",
                f"runs/{kind}",
                "--set",
                f"kind={kind}",
            ],
            root,
        )
        assert done.returncode == 0, done.stderr
    return root


def test_data_prepare_on_real_tinystories(
    tmp_path: Path, tinystories: Path, gpt2_ranks: Path
) -> None:
    root = workspace(tmp_path)
    env = {"VIBE_DATA": str(tinystories), "VIBE_GPT2_RANKS": str(gpt2_ranks)}
    done = vibe("data", "prepare", "--tokenizer", "gpt2", "--json", cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    train, valid = report["splits"]
    assert (train["stories"], valid["stories"], valid["tokens"]) == (4709, 500, 99_280)
    assert train["built"] and 4.0 < valid["bytes_per_token"] < 4.2
    assert (root / ".vibe" / "cache" / "tokens" / "valid" / "gpt2" / "tokens.bin").is_file()
    again = json.loads(
        vibe("data", "prepare", "--tokenizer", "gpt2", "--json", cwd=root, env=env).stdout
    )
    assert not again["splits"][0]["built"]
    shown = vibe("data", "show", cwd=root, env=env)
    assert shown.returncode == 0 and "99,280" in shown.stdout


@pytest.mark.parametrize(
    ("settings", "files", "args", "message"),
    [
        (
            '[data]\ntrain = ["stories/train-*.txt"]\nvalid = "stories/valid.txt"\n',
            {},
            [],
            "no such file",
        ),
        (
            '[data]\ntrain = ["train.txt"]\nvalid = "valid.txt"\n',
            {"train.txt": b"", "valid.txt": b"x\n<|endoftext|>\n"},
            [],
            "empty corpus",
        ),
        (
            '[data]\ntrain = ["train.txt"]\nvalid = "valid.txt"\n',
            {"train.txt": b"A story.\nThe end.\n"},
            [],
            "no <|endoftext|> separators",
        ),
        (
            '[data]\ntrain = ["train.txt"]\nvalid = "valid.txt"\n',
            {"train.txt": b"A \xe9t\xe9 story.\n<|endoftext|>\n"},
            [],
            "not UTF-8",
        ),
        (
            '[data]\nsource = "synthetic"\n',
            {},
            ["--tokenizer", "bpe:lots"],
            "unknown tokenizer spec 'bpe:lots'",
        ),
        ("[data\nsource = ", {}, [], "malformed TOML"),
        ('[data]\ncolour = "red"\n', {}, [], "data.colour: Extra inputs are not permitted"),
    ],
    ids=[
        "missing-path",
        "empty-corpus",
        "no-separators",
        "not-utf8",
        "unknown-tokenizer",
        "malformed-toml",
        "unknown-key",
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, settings: str, files: dict[str, bytes], args: list[str], message: str
) -> None:
    root = workspace(tmp_path, settings)
    for name, content in files.items():
        (root / name).write_bytes(content)
    assert_one_line_error(vibe("data", "prepare", *args, cwd=root), message)
    assert cache_files(root) == []


def test_no_workspace_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(vibe("data", "prepare", cwd=tmp_path), "run `vibe-research init`")


def test_hub_without_network_fails_fast(tmp_path: Path) -> None:
    root = workspace(tmp_path, '[data]\nsource = "hub"\n')
    env = {
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path / "hf"),
    }  # port 9: nobody answers
    started = time.monotonic()
    assert_one_line_error(
        vibe("data", "prepare", cwd=root, env=env), "cannot load roneneldan/TinyStories"
    )
    assert time.monotonic() - started < 30 and cache_files(root) == []


def test_auto_falls_back_to_synthetic_loudly(tmp_path: Path) -> None:
    root = workspace(
        tmp_path, "[data]\nsynthetic_train_stories = 300\nsynthetic_valid_stories = 20\n"
    )
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    done = vibe("data", "prepare", "--tokenizer", "bpe:512", "--json", cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    assert "NOT TinyStories" in done.stderr
    splits = json.loads(done.stdout)["splits"]
    assert [(split["split"], split["source_kind"]) for split in splits] == [
        ("train", "synthetic"),
        ("valid", "synthetic"),
        ("test", "synthetic"),  # the sealed test split: its own seed stream
    ]


def test_evaluate_unigram_and_reject_peeking(prepared: Path) -> None:
    done = vibe(
        "evaluate",
        "runs/unigram",
        "--entry",
        REFERENCE,
        "--samples",
        "2",
        "--max-tokens",
        "20",
        "--json",
        cwd=prepared,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and 2.0 < result["bpb"] < 2.5 and len(result["samples"]) == 2
    assert result["tokenizer"] == "bpe:4096" and result["valid_fingerprint"]
    rejected = vibe(
        "evaluate", "runs/peeking", "--entry", REFERENCE, "--samples", "0", cwd=prepared
    )
    assert rejected.returncode == 3 and "model rejected: not causal" in rejected.stdout


def test_evaluate_on_another_valid_file(prepared: Path, tmp_path: Path) -> None:
    valid = write_txt(tmp_path / "mine.txt", STORIES)
    done = vibe(
        "evaluate",
        "runs/unigram",
        "--entry",
        REFERENCE,
        "--valid",
        str(valid),
        "--samples",
        "1",
        cwd=prepared,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "validation bits per byte" in done.stdout
        and "3 stories" in done.stdout
        and "seed 1000" in done.stdout
    )


def test_evaluate_bad_input(prepared: Path) -> None:
    assert_one_line_error(
        vibe("evaluate", "runs/none", "--entry", REFERENCE, cwd=prepared), "no such run folder"
    )
    assert_one_line_error(
        vibe("evaluate", "runs/unigram", "--entry", "nope.py", cwd=prepared),
        "no such experiment file",
    )


def test_sample_continues_a_prompt(prepared: Path) -> None:
    args = (
        "sample",
        "runs/unigram",
        "--entry",
        REFERENCE,
        "--prompt",
        "Once upon a time",
        "--max-tokens",
        "12",
    )
    done = vibe(*args, "--json", cwd=prepared)
    assert done.returncode == 0, done.stderr
    story = json.loads(done.stdout)
    assert story["text"].startswith("Once upon a time") and story["tokens"] <= 12
    assert story["text"] == story["prompt"] + story["continuation"]
