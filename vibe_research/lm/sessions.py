"""The scorer's side of the model process: sessions, each answered by a fresh process.

`ModelProcess` talks to `python -m vibe_research.lm.serve` over the control socket; each
`session()` gets a child that has seen nothing before it. A session's answers arrive in a shared
buffer (a sealed memfd, new per session) that the session's process may still write while it
lives, so the consumers read every value once (scoring.RowReader) before they use it.

`LocalModel` offers the same interface for a model already in this process: no isolation at all,
for measuring what the isolation costs (benchmarks/evaluation.py) and for unit tests of honest
models.

Every failure of the model (an error it reports, a crash, a hang past the deadline, an answer of
the wrong shape or dtype) raises ModelRejected with a reason for the researcher.
"""

import contextlib
import fcntl
import math
import mmap
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vibe_research.lm.api import LanguageModel
from vibe_research.lm.entry import ModelRejected, call_logprobs, check_interface
from vibe_research.lm.errors import UserError
from vibe_research.lm.protocol import (
    DTYPES,
    TO_SCORER_CONTROL,
    TO_SCORER_SESSION,
    Answers,
    ArraySpec,
    Close,
    Closed,
    Decode,
    Failed,
    Hello,
    Logprobs,
    Open,
    Opened,
    PeerClosed,
    PeerTimeout,
    ProtocolError,
    Ready,
    Rows,
    array_spec,
    receive,
    send,
)
from vibe_research.lm.tokenizer import check_spec

if TYPE_CHECKING:
    import torch

LOGIT_ELEMENTS = 1 << 21  # rows * V log-probabilities asked per request (8 MB in float32)
HELLO_TIMEOUT_S = 120.0  # the model process imports torch before it says hello
DEATH_WAIT_S = 1.0  # after a session's connection broke: time for its exit status to show


@dataclass(frozen=True)
class ModelInfo:
    vocab_size: int
    tokenizer: str
    context_length: int
    decoder: bool  # the model offers decoder(), the incremental step
    threads: int | None = None  # torch threads of the process answering (as it says)


@dataclass(frozen=True)
class Answer:
    """float32/64 log-probabilities: one [length, V] block per window asked ([1, V] per step),
    maybe in memory the model process can still write."""

    rows: list[np.ndarray]


class Session(Protocol):
    info: ModelInfo

    def logprobs(self, tokens: np.ndarray, lengths: np.ndarray, last_only: bool = False) -> Answer:
        """tokens int64 [B, T]: window b is tokens[b, :lengths[b]] (the rest is padding)."""
        ...

    def decode(self, tokens: np.ndarray, reset: bool) -> Answer:
        """Append tokens int64 [n] to the session's sequence (a new one when `reset`)."""
        ...

    def close(self) -> None: ...


class ModelSource(Protocol):
    info: ModelInfo | None  # known once a session has opened

    def session(self) -> Session: ...


def _info(ready: Ready) -> ModelInfo:
    try:
        check_spec(ready.tokenizer)
    except UserError as exc:
        raise ModelRejected(f"the model names an unknown tokenizer: {exc}") from exc
    return ModelInfo(
        ready.vocab_size, ready.tokenizer, ready.context_length, ready.decoder, ready.threads
    )


def answer_bytes(info: ModelInfo) -> int:
    """Room for the largest answer in float64: a full batch, or one window of the whole context."""
    return max(LOGIT_ELEMENTS, info.context_length * info.vocab_size) * 8


def _answer_buffer(size: int) -> int:
    """A file of `size` bytes that only this process and the one it is handed to can reach."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("vibe-answers", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(fd, size)
        # sealed: the session's process can neither shrink it (the scorer's reads would fault)
        # nor grow it
        fcntl.fcntl(
            fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
        )
        return fd
    with tempfile.TemporaryFile() as handle:  # unlinked at once: reachable only through its fd
        fd = os.dup(handle.fileno())
    os.ftruncate(fd, size)
    return fd


class ModelProcess:
    """The running model process; `deadline` (time.monotonic()) bounds every wait on it."""

    def __init__(
        self, control: socket.socket, deadline: float, process: subprocess.Popen | None = None
    ) -> None:
        self.control, self.deadline, self.process = control, deadline, process
        self.info: ModelInfo | None = None  # what its first session said; later ones must agree
        try:
            hello = self._control_reply(min(deadline, time.monotonic() + HELLO_TIMEOUT_S))
        except ProtocolError as exc:
            self.close()
            raise ModelRejected(f"the model process did not start: {exc}") from exc
        if not isinstance(hello, Hello):
            self.close()
            raise ModelRejected(f"the model process began with {hello.kind}, not hello")

    @classmethod
    def spawn(
        cls, entry: Path, run_dir: Path, deadline: float, cache_dir: Path | None = None
    ) -> "ModelProcess":
        """Start `python -m vibe_research.lm.serve` here, outside any sandbox (its output goes to
        this process's stderr; `cache_dir` becomes its VIBE_CACHE_DIR). Sandboxed evaluations
        start it in runs/ and `connect` instead."""
        ours, theirs = socket.socketpair()
        command = [
            sys.executable,
            "-m",
            "vibe_research.lm.serve",
            "--entry",
            str(entry),
            "--run-dir",
            str(run_dir),
            "--control-fd",
            str(theirs.fileno()),
        ]
        env = dict(os.environ)
        if cache_dir is not None:
            env["VIBE_CACHE_DIR"] = str(cache_dir)
        process = subprocess.Popen(
            command,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            env=env,
        )
        theirs.close()
        return cls(ours, deadline, process)

    @classmethod
    def connect(cls, fd: int, deadline: float) -> "ModelProcess":
        return cls(socket.socket(fileno=fd), deadline)

    def _control_reply(self, deadline: float | None = None) -> object:
        message, _, _ = receive(self.control, TO_SCORER_CONTROL, deadline or self.deadline)
        return message

    def session(self) -> "ProcessSession":
        ours, theirs = socket.socketpair()
        try:
            send(self.control, Open(), fds=(theirs.fileno(),))
            opened = self._control_reply()
        except ProtocolError as exc:
            raise ModelRejected(f"the model process ended or stopped answering ({exc})") from exc
        finally:
            theirs.close()
        if not isinstance(opened, Opened):
            raise ModelRejected(f"the model process answered open with {opened.kind}")
        session = ProcessSession(self, ours, opened.pid)
        try:
            session.start()
        except ModelRejected:
            session.close()
            raise
        if self.info is None:
            self.info = session.info
        elif session.info != self.info:
            session.close()
            raise ModelRejected(
                f"the model described itself as {session.info} in one process and {self.info} in another"
            )
        return session

    def end_session(self, wait_s: float) -> str:
        """Have the session's process killed (after `wait_s` to end on its own); how it ended."""
        try:
            send(self.control, Close(wait_s=wait_s))
            closed = self._control_reply(time.monotonic() + 30 + wait_s)
        except ProtocolError:
            return "unknown: the model process stopped answering"
        return closed.ended if isinstance(closed, Closed) else "unknown"

    def close(self) -> None:
        self.control.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "ModelProcess":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ProcessSession:
    """One session: a socket to its own fresh process and the buffer its answers land in."""

    def __init__(self, process: ModelProcess, sock: socket.socket, pid: int) -> None:
        self.process, self.sock, self.pid = process, sock, pid  # pid: the session's own process
        self.buffer: mmap.mmap | None = None
        self.closed = False

    def start(self) -> None:
        ready = self._reply("loading the model")
        if isinstance(ready, Failed):
            raise ModelRejected(ready.reason)
        if not isinstance(ready, Ready):
            raise ModelRejected(f"the model's process began with {ready.kind}, not ready")
        self.info = _info(ready)
        size = answer_bytes(self.info)
        fd = _answer_buffer(size)
        try:
            self.buffer = mmap.mmap(fd, size)
            send(self.sock, Answers(bytes=size), fds=(fd,))
        except PeerClosed as exc:
            raise self._died("taking its answer buffer") from exc
        finally:
            os.close(fd)

    def _reply(self, what: str) -> object:
        try:
            message, _, _ = receive(self.sock, TO_SCORER_SESSION, self.process.deadline)
        except PeerTimeout as exc:
            raise ModelRejected(
                f"the model gave no answer while {what} before the evaluation's deadline "
                "(sandbox.toml eval_timeout_s, or --timeout)"
            ) from exc
        except PeerClosed as exc:
            raise self._died(what) from exc
        except ProtocolError as exc:
            raise ModelRejected(
                f"the model's process broke the protocol while {what}: {exc}"
            ) from exc
        return message

    def _died(self, what: str) -> ModelRejected:
        ended = self.process.end_session(DEATH_WAIT_S)
        self.closed = True
        return ModelRejected(f"the model's process ended while {what} ({ended})")

    def _rows(self, what: str, *shapes: tuple[int, ...]) -> np.ndarray:
        """The answer to the request just sent, a view of the shared buffer in one of `shapes`."""
        reply = self._reply(what)
        if isinstance(reply, Failed):
            raise ModelRejected(reply.reason)
        if not isinstance(reply, Rows):
            raise ModelRejected(f"the model answered {what} with {reply.kind}")
        spec: ArraySpec = reply.rows
        if spec.shape not in shapes or spec.dtype == "int64" or spec.nbytes > len(self.buffer):
            raise ModelRejected(
                f"{what}: the answer must be float log-probabilities of shape "
                f"{' or '.join(str(list(shape)) for shape in shapes)}, got {spec.dtype} {list(spec.shape)}"
            )
        values = np.frombuffer(self.buffer, DTYPES[spec.dtype], math.prod(spec.shape))
        return values.reshape(spec.shape)

    def logprobs(self, tokens: np.ndarray, lengths: np.ndarray, last_only: bool = False) -> Answer:
        tokens, lengths = tokens.astype(np.int64), lengths.astype(np.int64)
        request = Logprobs(
            tokens=array_spec(tokens), lengths=array_spec(lengths), last_only=last_only
        )
        self._send(request, tokens.tobytes() + lengths.tobytes(), "logprobs")
        vocab = self.info.vocab_size
        if last_only:
            flat = self._rows("answering logprobs", (len(lengths), vocab))
            return Answer([flat[i : i + 1] for i in range(len(lengths))])
        packed, padded = (int(lengths.sum()), vocab), (*tokens.shape, vocab)
        answer = self._rows("answering logprobs", packed, padded)
        if answer.ndim == 3:  # the model wrote its whole [B, T, V] answer into the buffer
            return Answer([answer[row, :length] for row, length in enumerate(lengths)])
        return Answer(np.split(answer, np.cumsum(lengths)[:-1]))

    def decode(self, tokens: np.ndarray, reset: bool) -> Answer:
        tokens = tokens.astype(np.int64)
        self._send(Decode(tokens=array_spec(tokens), reset=reset), tokens.tobytes(), "decoding")
        return Answer([self._rows("decoding", (len(tokens), self.info.vocab_size))])

    def _send(self, message: object, payload: bytes, what: str) -> None:
        try:
            send(self.sock, message, payload)
        except PeerClosed as exc:
            raise self._died(f"taking a {what} request") from exc

    def close(self) -> None:
        if self.buffer is not None:
            with contextlib.suppress(BufferError):  # a caller still holds a view: freed with it
                self.buffer.close()
        self.sock.close()
        if not self.closed:
            self.closed = True
            self.process.end_session(0.0)

    def __enter__(self) -> "ProcessSession":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _numpy(out: "torch.Tensor") -> np.ndarray:
    """A CPU float tensor as numpy: float64 stays, every other float dtype becomes float32."""
    import torch

    return out.detach().to(torch.float64 if out.dtype == torch.float64 else torch.float32).numpy()


class LocalModel:
    """A model in this very process, behind the same interface; isolates nothing."""

    def __init__(self, model: LanguageModel) -> None:
        check_interface(model)
        self.model = model
        import torch

        self.info = ModelInfo(
            model.vocab_size,
            model.tokenizer,
            model.context_length,
            callable(getattr(model, "decoder", None)),
            torch.get_num_threads(),
        )

    def session(self) -> "LocalSession":
        return LocalSession(self)


class LocalSession:
    def __init__(self, local: LocalModel) -> None:
        self.model, self.info, self.decoder = local.model, local.info, None

    def logprobs(self, tokens: np.ndarray, lengths: np.ndarray, last_only: bool = False) -> Answer:
        import torch

        out = _numpy(call_logprobs(self.model, torch.from_numpy(tokens.astype(np.int64))))
        if last_only:
            return Answer([out[row, length - 1 : length] for row, length in enumerate(lengths)])
        return Answer([out[row, :length] for row, length in enumerate(lengths)])

    def decode(self, tokens: np.ndarray, reset: bool) -> Answer:
        import torch

        from vibe_research.lm.answer import checked_rows

        try:
            if reset or self.decoder is None:
                self.decoder = self.model.decoder()
            with torch.inference_mode():
                out = self.decoder.step(torch.from_numpy(tokens.astype(np.int64)))
        except Exception as exc:  # untrusted code: a crash is the model's failure
            raise ModelRejected(f"decoding raised {type(exc).__name__}: {exc}") from exc
        return Answer([_numpy(checked_rows(out, len(tokens), self.info.vocab_size))])

    def close(self) -> None:
        self.decoder = None

    def __enter__(self) -> "LocalSession":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
