"""Loading a model from an experiment file: `load_model(run_dir)` imported by file location.

Only the model process (vibe_research.lm.answer) and experiments that build on another run
(fusion's base run) do this; the scorer never imports experiment code. The entry's folder goes
first on sys.path so it can import its siblings (experiments/model.py...). Whatever the entry's
code raises is a failure of the model, reported as ModelRejected, not a crash.
"""

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vibe_research.lm.api import LanguageModel
from vibe_research.lm.errors import UserError
from vibe_research.lm.tokenizer import check_spec

if TYPE_CHECKING:
    import torch


class ModelRejected(Exception):
    """The model broke the ModelAPI contract; the message is the reason shown to the researcher."""


def check_paths(entry: Path, run_dir: Path) -> None:
    """UserError unless `entry` is a file and `run_dir` a folder."""
    if not entry.resolve().is_file():
        raise UserError(
            f"{entry.resolve()}: no such experiment file; pass --entry with the file that defines load_model"
        )
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder; pass the folder a training run wrote")


def load_model(entry: Path, run_dir: Path) -> LanguageModel:
    """Import `entry`, call its `load_model(run_dir)`, and check the model's declared interface."""
    check_paths(entry, run_dir)
    entry = entry.resolve()
    sys.path.insert(0, str(entry.parent))
    spec = importlib.util.spec_from_file_location(f"vibe_entry_{entry.stem}", entry)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the entry is untrusted code: any failure is the model's
        raise ModelRejected(f"importing {entry.name} raised {type(exc).__name__}: {exc}") from exc
    loader = getattr(module, "load_model", None)
    if not callable(loader):
        raise ModelRejected(f"{entry.name} defines no load_model(run_dir) function")
    try:
        model = loader(run_dir)
    except Exception as exc:  # untrusted code, as above
        raise ModelRejected(f"load_model({run_dir}) raised {type(exc).__name__}: {exc}") from exc
    check_interface(model)
    return model


def check_interface(model: object) -> None:
    """vocab_size, tokenizer, context_length and logprobs exist with sane types."""
    for name, kind in (("vocab_size", int), ("context_length", int), ("tokenizer", str)):
        value = getattr(model, name, None)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ModelRejected(f"the model's {name} is {value!r}; it must be a {kind.__name__}")
    if model.vocab_size < 2 or model.context_length < 1:
        raise ModelRejected(
            f"vocab_size {model.vocab_size} / context_length {model.context_length} out of range"
        )
    if not callable(getattr(model, "logprobs", None)):
        raise ModelRejected("the model has no logprobs(tokens) method")
    try:
        check_spec(model.tokenizer)
    except UserError as exc:
        raise ModelRejected(f"the model names an unknown tokenizer: {exc}") from exc


def call_logprobs(
    model: LanguageModel, tokens: "torch.Tensor", out: "torch.Tensor | None" = None
) -> "torch.Tensor":
    """model.logprobs(tokens) (with `out=` when given) on the CPU, shape-checked; anything the
    model raises is ModelRejected."""
    import torch

    try:
        with torch.inference_mode():
            out = model.logprobs(tokens) if out is None else model.logprobs(tokens, out=out)
    except Exception as exc:  # untrusted code: a crash is the model's failure
        raise ModelRejected(f"logprobs raised {type(exc).__name__}: {exc}") from exc
    expected = (*tokens.shape, model.vocab_size)
    if (
        not isinstance(out, torch.Tensor)
        or tuple(out.shape) != expected
        or not out.is_floating_point()
    ):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelRejected(
            f"logprobs must return a float tensor of shape [B, T, V] = {list(expected)}, got {got}"
        )
    return out.cpu()
