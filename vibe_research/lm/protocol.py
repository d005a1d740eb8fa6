"""The wire between the scorer and the model process: small, versioned, typed messages.

Each message is a frame: a little-endian u32 length, then that many bytes of JSON (one of the
pydantic models below, told apart by `kind`, every one with `v` = PROTOCOL_VERSION), then the
raw bytes of the arrays the JSON describes (ArraySpec: dtype and shape, C order). File
descriptors travel as SCM_RIGHTS with a frame's first bytes. Answers too large for a frame (the
log-probabilities, up to LOGIT_ELEMENTS values) are written into a shared buffer the scorer
handed over; the `Rows` frame says what lies there.

Two conversations:
- control (scorer <-> the model process's parent): Hello; then per session Open (with the
  session's socket) -> Opened, and Close -> Closed.
- session (scorer <-> the fresh child answering one session): Ready or Failed; then Answers
  (with the shared buffer), and requests Logprobs / Decode, each answered by Rows or Failed.
"""

import math
import socket
import struct
import time
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 1 << 16  # JSON of one frame; the largest real one (a Failed reason) is far below
MAX_REASON_CHARS = 4000
LENGTH = struct.Struct("<I")
DTYPES = {"int64": np.int64, "float32": np.float32, "float64": np.float64}


class ProtocolError(Exception):
    """The other side sent something this protocol does not allow, or nothing in time."""


class PeerClosed(ProtocolError):
    """The other side closed its end (it exited, or it was killed)."""


class PeerTimeout(ProtocolError):
    """No complete frame arrived before the deadline."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = PROTOCOL_VERSION


class ArraySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dtype: Literal["int64", "float32", "float64"]
    shape: tuple[Annotated[int, Field(ge=0)], ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(DTYPES[self.dtype]).itemsize


# control: model process -> scorer
class Hello(_Message):
    kind: Literal["hello"] = "hello"
    pid: int


class Opened(_Message):
    kind: Literal["opened"] = "opened"
    pid: int  # the session's process


class Closed(_Message):
    kind: Literal["closed"] = "closed"
    ended: str  # how the session's process ended: "exit 0", "signal 9"


# control: scorer -> model process
class Open(_Message):
    kind: Literal["open"] = "open"  # carries the session's socket as its one fd


class Close(_Message):
    kind: Literal["close"] = "close"
    wait_s: float = Field(
        default=0.0, ge=0, le=10
    )  # let the session's process end on its own first


# session: child -> scorer
class Ready(_Message):
    kind: Literal["ready"] = "ready"
    vocab_size: int = Field(ge=2)
    tokenizer: str = Field(max_length=100)
    context_length: int = Field(ge=1)
    decoder: bool  # the model offers decoder()
    threads: int | None = Field(default=None, ge=1, le=1 << 16)  # its torch threads, as it says


class Failed(_Message):
    kind: Literal["failed"] = "failed"
    reason: str = Field(max_length=MAX_REASON_CHARS)


class Rows(_Message):
    kind: Literal["rows"] = "rows"
    rows: ArraySpec  # [N, V] at offset 0 of the shared buffer


# session: scorer -> child
class Answers(_Message):
    kind: Literal["answers"] = "answers"  # carries the shared buffer as its one fd
    bytes: int


class Logprobs(_Message):
    """Payload: tokens [B, T] then lengths [B]. Answer: the real rows of every window, window by
    window ([sum(lengths), V]), or with last_only each window's last real row ([B, V])."""

    kind: Literal["logprobs"] = "logprobs"
    tokens: ArraySpec
    lengths: ArraySpec
    last_only: bool = False

    @property
    def payload_bytes(self) -> int:
        return self.tokens.nbytes + self.lengths.nbytes


class Decode(_Message):
    """Payload: tokens [n], appended to the sequence (a fresh one when `reset`). Answer: [n, V]."""

    kind: Literal["decode"] = "decode"
    tokens: ArraySpec
    reset: bool

    @property
    def payload_bytes(self) -> int:
        return self.tokens.nbytes


TO_SCORER_CONTROL = TypeAdapter(Annotated[Hello | Opened | Closed, Field(discriminator="kind")])
TO_MODEL_CONTROL = TypeAdapter(Annotated[Open | Close, Field(discriminator="kind")])
TO_SCORER_SESSION = TypeAdapter(Annotated[Ready | Failed | Rows, Field(discriminator="kind")])
TO_SESSION = TypeAdapter(Annotated[Answers | Logprobs | Decode, Field(discriminator="kind")])


def array_spec(array: np.ndarray) -> ArraySpec:
    return ArraySpec(dtype=array.dtype.name, shape=array.shape)


def arrays(specs: list[ArraySpec], payload: bytes) -> list[np.ndarray]:
    """The arrays `specs` describe, read one after another from `payload` (copies)."""
    out, offset = [], 0
    for spec in specs:
        out.append(
            np.frombuffer(payload, DTYPES[spec.dtype], math.prod(spec.shape), offset)
            .reshape(spec.shape)
            .copy()
        )
        offset += spec.nbytes
    return out


def send(
    sock: socket.socket, message: _Message, payload: bytes = b"", fds: tuple[int, ...] = ()
) -> None:
    """One frame, then its payload; `fds` ride on the frame's first bytes."""
    body = message.model_dump_json().encode()
    frame = LENGTH.pack(len(body)) + body
    try:
        sent = socket.send_fds(sock, [frame], list(fds)) if fds else 0
        sock.sendall(frame[sent:])
        if payload:
            sock.sendall(payload)
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise PeerClosed("the other side closed the connection") from exc


def receive(
    sock: socket.socket,
    adapter: TypeAdapter,
    deadline: float | None,
    payload_limit: int = 0,
    max_fds: int = 0,
) -> tuple[_Message, bytes, list[int]]:
    """The next message, its payload and any fds it carried (at most `max_fds`; any others the
    kernel drops). `deadline` is time.monotonic() seconds, None for no limit."""
    fds: list[int] = []
    if max_fds:
        _wait(sock, deadline)
        try:
            head, fds, _, _ = socket.recv_fds(sock, LENGTH.size, max_fds)
        except TimeoutError as exc:
            raise PeerTimeout("no answer in time") from exc
        except ConnectionResetError as exc:
            raise PeerClosed("the other side closed the connection") from exc
        if not head:
            raise PeerClosed("the other side closed the connection")
        head += _exactly(sock, LENGTH.size - len(head), deadline)
    else:
        head = _exactly(sock, LENGTH.size, deadline)
    (size,) = LENGTH.unpack(head)
    if size > MAX_FRAME_BYTES:
        _close(fds)
        raise ProtocolError(f"a frame of {size} bytes (the limit is {MAX_FRAME_BYTES})")
    try:
        message = adapter.validate_json(_exactly(sock, size, deadline))
    except ValidationError as exc:
        _close(fds)
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "frame"
        raise ProtocolError(f"a malformed message ({where}: {first['msg']})") from exc
    needed = getattr(message, "payload_bytes", 0)
    if needed > payload_limit:
        _close(fds)
        raise ProtocolError(f"a payload of {needed} bytes (the limit is {payload_limit})")
    return message, _exactly(sock, needed, deadline) if needed else b"", fds


def _close(fds: list[int]) -> None:
    for fd in fds:
        socket.close(fd)


def _wait(sock: socket.socket, deadline: float | None) -> None:
    sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 1e-3))


def _exactly(sock: socket.socket, count: int, deadline: float | None) -> bytes:
    buffer = bytearray(count)
    view, got = memoryview(buffer), 0
    while got < count:
        _wait(sock, deadline)
        try:
            n = sock.recv_into(view[got:], count - got)
        except TimeoutError as exc:
            raise PeerTimeout("no answer in time") from exc
        except ConnectionResetError as exc:
            raise PeerClosed("the other side closed the connection") from exc
        if n == 0:
            raise PeerClosed("the other side closed the connection")
        got += n
    return bytes(buffer)
