"""Search/replace edits on real files: only under experiments/, exactly once, compiling, all or nothing."""

import os
from pathlib import Path

import pytest
from gitrepo import commit_all

from vibe_research.llm.schemas import Edit
from vibe_research.research.propose.edits import EditRejected, apply_edits

TRAIN = '''"""A tiny experiment."""

CONFIG = {
    "n_layer": 3,  # transformer blocks
    "lr": 2e-3,  # peak learning rate
}


def step(x):
    return x + 1


def other(x):
    return x + 1
'''
HELPER = "SCALE = 2\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "train.py").write_text(TRAIN)
    (tmp_path / "experiments" / "helper.py").write_text(HELPER)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("# notes\n")
    commit_all(tmp_path)
    return tmp_path


def _snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _rejected(root: Path, edits: list[Edit], message: str) -> None:
    before = _snapshot(root)
    with pytest.raises(EditRejected, match=message):
        apply_edits(root, edits)
    assert _snapshot(root) == before, "a rejected edit must leave every file as it was"


def test_exact_edit_is_applied_and_can_be_reverted(root):
    edit = Edit(
        path="experiments/train.py", search='    "n_layer": 3,', replace='    "n_layer": 4,'
    )
    applied = apply_edits(root, [edit])

    assert '"n_layer": 4,' in (root / "experiments" / "train.py").read_text()
    assert [(m.path, m.match) for m in applied.matches] == [("experiments/train.py", "exact")]
    applied.revert()
    assert (root / "experiments" / "train.py").read_text() == TRAIN


def test_several_edits_on_several_files_apply_in_order(root):
    applied = apply_edits(
        root,
        [
            Edit(path="experiments/train.py", search='"lr": 2e-3,', replace='"lr": 4e-3,'),
            Edit(
                path="experiments/train.py",
                search='"lr": 4e-3,  # peak',
                replace='"lr": 5e-3,  # peak',
            ),
            Edit(path="experiments/helper.py", search="SCALE = 2", replace="SCALE = 3"),
        ],
    )
    assert '"lr": 5e-3,' in (root / "experiments" / "train.py").read_text()
    assert (root / "experiments" / "helper.py").read_text() == "SCALE = 3\n"
    applied.revert()
    assert (root / "experiments" / "train.py").read_text() == TRAIN
    assert (root / "experiments" / "helper.py").read_text() == HELPER


def test_whitespace_tolerant_match_is_the_fallback_and_is_recorded(root):
    # The model lost the indentation and added trailing spaces; the file's indentation is kept.
    edit = Edit(
        path="experiments/train.py",
        search='"n_layer": 3,  # transformer blocks  \n"lr":   2e-3,  # peak learning rate',
        replace='"n_layer": 5,  # transformer blocks\n"lr": 1e-3,  # peak learning rate',
    )
    applied = apply_edits(root, [edit])

    text = (root / "experiments" / "train.py").read_text()
    assert (
        '    "n_layer": 5,  # transformer blocks\n    "lr": 1e-3,  # peak learning rate\n}' in text
    )
    assert applied.matches[0].match == "whitespace"


def test_a_new_file_is_created_with_an_empty_search_and_removed_on_revert(root):
    applied = apply_edits(
        root,
        [Edit(path="experiments/sched.py", search="", replace="def lr_at(t):\n    return 1 - t\n")],
    )
    new = root / "experiments" / "sched.py"
    assert new.read_text().startswith("def lr_at") and applied.matches[0].match == "new file"
    assert oct(new.stat().st_mode & 0o777) == oct(0o644)
    applied.revert()
    assert not new.exists()


def test_edit_outside_experiments_is_rejected(root):
    _rejected(
        root,
        [Edit(path="notes/README.md", search="# notes", replace="# mine")],
        "outside experiments/",
    )
    _rejected(
        root,
        [Edit(path="vibe_research/lm/evaluate.py", search="", replace="x = 1\n")],
        "outside experiments/",
    )


def test_path_traversal_and_absolute_paths_are_rejected(root):
    _rejected(
        root,
        [Edit(path="experiments/../notes/README.md", search="# notes", replace="# mine")],
        r"uses '\.\.'",
    )
    absolute = str(root / "experiments" / "train.py")
    _rejected(
        root,
        [Edit(path=absolute, search="CONFIG", replace="CFG")],
        "must be relative to the workspace",
    )


def test_symlink_leaving_experiments_is_rejected(root):
    os.symlink(root / "notes", root / "experiments" / "notes_link")
    _rejected(
        root,
        [Edit(path="experiments/notes_link/README.md", search="# notes", replace="# mine")],
        "through a symlink",
    )


def test_no_op_edit_is_rejected(root):
    _rejected(
        root,
        [Edit(path="experiments/train.py", search='"n_layer": 3,', replace='"n_layer": 3,')],
        "no-op",
    )


def test_edit_that_does_not_compile_is_rejected(root):
    edit = Edit(
        path="experiments/train.py",
        search="    return x + 1\n\n\ndef other",
        replace="    return (x + 1\n\n\ndef other",
    )
    _rejected(root, [edit], r"experiments/train.py:\d+: .* after the edits; nothing was changed")


def test_search_block_matching_twice_is_rejected(root):
    _rejected(
        root,
        [Edit(path="experiments/train.py", search="    return x + 1", replace="    return x + 2")],
        "matches 2 times",
    )


def test_search_block_not_in_the_file_is_rejected(root):
    _rejected(
        root,
        [Edit(path="experiments/train.py", search='"n_head": 4,', replace='"n_head": 8,')],
        "not in the file",
    )


def test_one_bad_edit_rejects_the_whole_set(root):
    edits = [
        Edit(path="experiments/helper.py", search="SCALE = 2", replace="SCALE = 3"),
        Edit(path="experiments/train.py", search="CONFIG = {", replace="CONFIG = {{"),
    ]
    _rejected(root, edits, "after the edits")


def test_missing_file_needs_an_empty_search(root):
    _rejected(
        root,
        [Edit(path="experiments/absent.py", search="x = 1", replace="x = 2")],
        "does not exist",
    )
