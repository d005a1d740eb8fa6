"""One session of the model process: load the experiment's model and answer the scorer.

Runs in a fresh child of vibe_research.lm.serve, one per session, so what it sees dies with it.
Everything after `load_model` is under the experiment's control and trusted for nothing: the
scorer checks every answer it receives. Errors the model raises are sent as `Failed`.
"""

import inspect
import logging
import mmap
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vibe_research.lm.entry import ModelRejected, call_logprobs, load_model
from vibe_research.lm.errors import UserError
from vibe_research.lm.protocol import (
    DTYPES,
    MAX_REASON_CHARS,
    TO_SESSION,
    Answers,
    ArraySpec,
    Decode,
    Failed,
    Logprobs,
    PeerClosed,
    Ready,
    Rows,
    arrays,
    receive,
    send,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1 << 26  # token payload of one request: far above [B, T] int64 of any batch


def answer(sock: socket.socket, entry: Path, run_dir: Path) -> None:
    """Load the model, say Ready (or Failed), then answer requests until the scorer hangs up."""
    import torch

    try:
        model = load_model(entry, run_dir)
    except (ModelRejected, UserError) as exc:
        send(sock, Failed(reason=_reason(str(exc))))
        return
    send(
        sock,
        Ready(
            vocab_size=model.vocab_size,
            tokenizer=model.tokenizer,
            context_length=model.context_length,
            decoder=callable(getattr(model, "decoder", None)),
            threads=torch.get_num_threads(),
        ),
    )
    answers: mmap.mmap | None = None
    decoder = None
    takes_out = _takes_out(model)
    while True:
        try:
            message, payload, fds = receive(sock, TO_SESSION, None, MAX_REQUEST_BYTES, max_fds=1)
        except PeerClosed:
            return
        try:
            if isinstance(message, Answers):
                answers = mmap.mmap(fds[0], message.bytes)
                os.close(fds[0])
                continue
            if answers is None:
                raise ModelRejected("a request came before the answer buffer")
            if isinstance(message, Logprobs):
                tokens, lengths = arrays([message.tokens, message.lengths], payload)
                spec = _logprobs(model, answers, tokens, lengths, message.last_only, takes_out)
            elif isinstance(message, Decode):
                if message.reset or decoder is None:
                    decoder = model.decoder()
                [tokens] = arrays([message.tokens], payload)
                with torch.inference_mode():
                    out = decoder.step(torch.from_numpy(tokens))
                spec = _write_rows(answers, checked_rows(out, len(tokens), model.vocab_size))
        except Exception as exc:  # the model's code is untrusted: any failure is its answer
            log.exception("the model failed a request")
            send(sock, Failed(reason=_reason(_describe(exc))))
            return
        send(sock, Rows(rows=spec))


def _takes_out(model: object) -> bool:
    """Whether the model's logprobs accepts a keyword `out` (the optional answer buffer)."""
    try:
        return "out" in inspect.signature(model.logprobs).parameters
    except (TypeError, ValueError):  # a builtin or C function: no signature to read
        return False


def _logprobs(
    model: object,
    answers: mmap.mmap,
    tokens: np.ndarray,
    lengths: np.ndarray,
    last_only: bool,
    takes_out: bool,
) -> ArraySpec:
    """Answer one Logprobs request into the buffer. A model whose logprobs takes `out` writes its
    whole [B, T, V] answer there itself (no copy); otherwise the real rows are copied in."""
    import torch

    batch, width = tokens.shape
    inputs = torch.from_numpy(tokens)
    if takes_out and not last_only:
        target, _ = _target(answers, torch.float32, batch * width, model.vocab_size)
        target = target.view(batch, width, model.vocab_size)
        with torch.inference_mode():
            out = call_logprobs(model, inputs, out=target)
        if (out.data_ptr(), out.stride(), out.dtype) == (
            target.data_ptr(),
            target.stride(),
            torch.float32,
        ):
            return ArraySpec(dtype="float32", shape=(batch, width, model.vocab_size))
        out = out.clone()  # it may share the buffer it is about to be copied into
    else:
        with torch.inference_mode():
            out = call_logprobs(model, inputs)
    return _write_windows(answers, out, lengths, last_only)


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ModelRejected) else f"{type(exc).__name__}: {exc}"


def _reason(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def _target(
    answers: mmap.mmap, out_dtype: "torch.dtype", rows: int, vocab: int
) -> tuple["torch.Tensor", ArraySpec]:
    """The answer buffer as a [rows, vocab] tensor of float64 (for a float64 model) or float32."""
    import torch

    dtype = "float64" if out_dtype == torch.float64 else "float32"
    spec = ArraySpec(dtype=dtype, shape=(rows, vocab))
    if spec.nbytes > len(answers):
        raise ModelRejected(f"an answer of {spec.nbytes} bytes does not fit the buffer")
    view = np.frombuffer(answers, DTYPES[dtype], rows * vocab).reshape(rows, vocab)
    return torch.from_numpy(view), spec


def _write_windows(
    answers: mmap.mmap, out: "torch.Tensor", lengths: np.ndarray, last_only: bool
) -> ArraySpec:
    """The real rows of out [B, T, V] (the first lengths[b] of row b), or each window's last."""
    import torch

    vocab = out.shape[-1]
    if last_only:
        target, spec = _target(answers, out.dtype, len(lengths), vocab)
        target.copy_(out[torch.arange(len(lengths)), torch.from_numpy(lengths - 1)])
        return spec
    target, spec = _target(answers, out.dtype, int(lengths.sum()), vocab)
    offset = 0
    for row, length in enumerate(lengths.tolist()):
        target[offset : offset + length].copy_(out[row, :length])
        offset += length
    return spec


def checked_rows(out: object, count: int, vocab: int) -> "torch.Tensor":
    """A decoder's answer on the CPU, once it is a float tensor [count, vocab]."""
    import torch

    if (
        not isinstance(out, torch.Tensor)
        or not out.is_floating_point()
        or out.shape != (count, vocab)
    ):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelRejected(
            f"decoder().step must return a float tensor of shape [n, V] = [{count}, {vocab}], got {got}"
        )
    return out.cpu()


def _write_rows(answers: mmap.mmap, rows: "torch.Tensor") -> ArraySpec:
    target, spec = _target(answers, rows.dtype, *rows.shape)
    target.copy_(rows)
    return spec
