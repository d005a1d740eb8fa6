"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests and fault soaks.

Real HTTP, so the real `openai` client is exercised end to end. Each test queues what the
server answers, in order: JSON or raw text replies, HTTP errors, each optionally delayed, or one
of the fault modes a real endpoint produces (FAULTS, queued by name).

    with ScriptedOpenAIServer() as server:
        server.reply_json({"title": ...})
        server.fail(429)
        server.fault("hang")
        settings = LLMSettings(base_url=server.base_url, ...)
        ...
        assert len(server.requests) == 3   # the JSON bodies the client sent

`reject_json_schema=True` plays a server without structured outputs: a request that asks for
a JSON-schema response format gets HTTP 400 and consumes nothing from the queue.

With nothing queued the server answers HTTP 500, unless it was made with `fail_rate`: then it
answers every request itself, a fault drawn from `faults` at that rate (random with `seed`), and
otherwise a valid reply to the schema asked for (the offline planner's proposal or suggestions
for the experiments/ files quoted in the prompt; fixed judge scores). As a process, for a fault
soak of `vibe-research continue` (it prints its address, one line per request on stderr):

    python tests/openai_server.py --port 8123 --fail-rate 0.3 --seed 1
"""

import argparse
import json
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ["test-model", "test-judge"]
HANG_POLL_S = 0.05  # how often a hung request checks whether the client has hung up


@dataclass(frozen=True)
class Scripted:
    status: int
    content: str | None = None  # the assistant's text, for status 200
    error: str = ""
    delay_s: float = 0.0
    usage: dict[str, int] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"  # "length": the reply was cut at max_tokens
    body: dict[str, Any] | None = None  # the whole error body, for formats other than OpenAI's
    hang: bool = False  # never answer; the request ends when the client gives up
    fault: str = ""  # the FAULTS name this answer was made from


def _estimated_prompt_tokens(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1


def _context_openai(body: dict[str, Any]) -> Scripted:
    prompt = _estimated_prompt_tokens(body)
    message = (
        f"This model's maximum context length is {prompt * 3 // 4} tokens. However, your messages "
        f"resulted in {prompt} tokens. Please reduce the length of the messages."
    )
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    return Scripted(400, body={"error": error}, fault="context_openai")


def _context_vllm(body: dict[str, Any]) -> Scripted:
    prompt = _estimated_prompt_tokens(body)
    completion = body.get("max_tokens") or 0
    message = (
        f"This model's maximum context length is {prompt * 3 // 4} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion."
    )
    vllm = {"object": "error", "message": message, "type": "BadRequestError", "param": None}
    return Scripted(400, body=vllm | {"code": 400}, fault="context_vllm")


def _context_llamacpp(body: dict[str, Any]) -> Scripted:
    prompt = _estimated_prompt_tokens(body)
    error = {
        "code": 400,
        "message": f"request ({prompt} tokens) exceeds the available context size ({prompt * 3 // 4} tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": prompt,
        "n_ctx": prompt * 3 // 4,
    }
    return Scripted(400, body={"error": error}, fault="context_llamacpp")


def _context_ollama(body: dict[str, Any]) -> Scripted:
    error = {
        "message": "the input length exceeds the context length",
        "type": "api_error",
        "param": None,
        "code": None,
    }
    return Scripted(400, body={"error": error}, fault="context_ollama")


# Each fault mode: what the server answers, built from the request it answers.
FAULTS = {
    "rate_limit": lambda body: Scripted(
        429,
        error="Rate limit reached for requests per min. Please try again in 1s.",
        headers={"Retry-After": "1"},
        fault="rate_limit",
    ),
    "server_error": lambda body: Scripted(
        500, error="The server had an error while processing your request.", fault="server_error"
    ),
    "hang": lambda body: Scripted(200, hang=True, fault="hang"),
    "not_json": lambda body: Scripted(
        200, content="I would widen the model; it should help a lot.", fault="not_json"
    ),
    "wrong_schema": lambda body: Scripted(
        200, content=json.dumps({"answer": "wider", "confidence": 0.9}), fault="wrong_schema"
    ),
    "unauthorized": lambda body: Scripted(
        401, error="Incorrect API key provided: sk-test.", fault="unauthorized"
    ),
    "context_openai": _context_openai,
    "context_vllm": _context_vllm,
    "context_llamacpp": _context_llamacpp,
    "context_ollama": _context_ollama,
    "no_json_schema": lambda body: Scripted(
        400,
        error="response_format of type json_schema is not supported by this server",
        fault="no_json_schema",
    ),
}
# Drawn by the random mix unless told otherwise: what a flaky but working endpoint does. The
# others (a bad key, a prompt over the context) do not come and go on a real server.
TRANSIENT_FAULTS = ("rate_limit", "server_error", "hang", "not_json", "wrong_schema")


class ScriptedOpenAIServer:
    def __init__(
        self,
        *,
        reject_json_schema: bool = False,
        fail_rate: float | None = None,
        seed: int = 0,
        faults: tuple[str, ...] = TRANSIENT_FAULTS,
        port: int = 0,
        log_requests: bool = False,
    ) -> None:
        unknown = sorted(set(faults) - set(FAULTS))
        if unknown:
            raise ValueError(f"unknown fault modes {unknown}; known: {sorted(FAULTS)}")
        self.reject_json_schema = reject_json_schema
        self.fail_rate = fail_rate
        self.faults = faults
        self.log_requests = log_requests
        self.requests: list[dict[str, Any]] = []
        self.served: list[str] = []  # per request: the fault name, "scripted" or "answered"
        self._random = random.Random(seed)
        self._script: deque[Scripted | str] = deque()  # a str: a FAULTS name
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="scripted-openai", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def pending(self) -> int:
        """Scripted answers not yet served."""
        with self._lock:
            return len(self._script)

    def reply_json(
        self, obj: Any, *, delay_s: float = 0.0, usage: dict[str, int] | None = None
    ) -> None:
        self.reply_text(json.dumps(obj), delay_s=delay_s, usage=usage)

    def reply_text(
        self,
        text: str,
        *,
        delay_s: float = 0.0,
        usage: dict[str, int] | None = None,
        finish_reason: str = "stop",
    ) -> None:
        self._push(
            Scripted(200, content=text, delay_s=delay_s, usage=usage, finish_reason=finish_reason)
        )

    def fail(
        self,
        status: int,
        message: str = "scripted failure",
        *,
        delay_s: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._push(Scripted(status, error=message, delay_s=delay_s, headers=headers or {}))

    def fault(self, name: str, times: int = 1) -> None:
        """Queue fault mode `name` (a key of FAULTS) for the next `times` requests."""
        if name not in FAULTS:
            raise ValueError(f"unknown fault mode {name!r}; known: {sorted(FAULTS)}")
        for _ in range(times):
            self._push(name)

    def _push(self, item: Scripted | str) -> None:
        with self._lock:
            self._script.append(item)

    def _next(self, body: dict[str, Any]) -> Scripted:
        with self._lock:
            self.requests.append(body)
            item, source = self._choose(body)
            self.served.append(item.fault or source)
        if self.log_requests:
            print(
                f"#{len(self.requests)} {_schema_name(body) or '?'}: {item.fault or source}",
                file=sys.stderr,
                flush=True,
            )
        return item

    def _choose(self, body: dict[str, Any]) -> tuple[Scripted, str]:
        """The answer to `body`, and where it came from: "scripted" or "answered" (or a fault)."""
        wants_schema = (body.get("response_format") or {}).get("type") == "json_schema"
        if self.reject_json_schema and wants_schema:
            return FAULTS["no_json_schema"](body), "rejected"
        if self._script:
            item = self._script.popleft()
            return (FAULTS[item](body) if isinstance(item, str) else item), "scripted"
        if self.fail_rate is None:
            return Scripted(
                500, error="ScriptedOpenAIServer: no scripted reply left for this request"
            ), "scripted"
        if self._random.random() < self.fail_rate:
            return FAULTS[self._random.choice(self.faults)](body), "drawn"
        return good_reply(body, self._random), "answered"

    def __enter__(self) -> "ScriptedOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _schema_name(body: dict[str, Any]) -> str | None:
    """The reply schema a request asks for: its response_format, else the one the prompt spells out."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format["json_schema"]["name"]
    for message in body.get("messages", []):
        # vibe_research/prompts/json_reply.md: "Answer with one JSON object, a `Name`, that ..."
        found = re.search(r"a `(\w+)`, that matches this JSON schema", str(message.get("content")))
        if found:
            return found.group(1)
    return None


def _quoted_files(body: dict[str, Any]) -> dict[str, str]:
    """The experiments/ files the prompt quotes (research/prompting.py: a heading, then a fence)."""
    pattern = re.compile(r"^## (experiments/\S+)\n\n(`{3,4})\w*\n(.*?)\n\2$", re.M | re.S)
    for message in body.get("messages", []):
        if message.get("role") == "user":
            files = {m.group(1): m.group(3) + "\n" for m in pattern.finditer(message["content"])}
            if files:
                return files
    return {}


TRIED_LINE = re.compile(r"^- (?P<title>.+?)(?: \[[^\]]+\])?: (?P<verdict>[a-z ]+)", re.M)


def _tried(body: dict[str, Any], files: dict[str, str]) -> list:
    """What the prompt lists as tried, mapped back to the planner's moves by title (an LLM's
    proposals carry no move key), so a working model does not propose the same thing again."""
    from vibe_research.llm.context import ResearchContext
    from vibe_research.llm.moves import catalogue
    from vibe_research.llm.schemas import Tried

    moves = {move.title: move.key for move in catalogue(ResearchContext(messages=[], files=files))}
    text = "\n".join(
        m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"
    )
    section = text.partition("# Everything tried so far")[2].partition("\n# ")[0]
    return [
        Tried(title=m["title"], verdict=m["verdict"].strip(), move=moves.get(m["title"]))
        for m in TRIED_LINE.finditer(section)
    ]


def good_reply(body: dict[str, Any], rng: random.Random) -> Scripted:
    """A valid answer to the schema the request asks for, as a working model would give."""
    from vibe_research.llm.context import ResearchContext
    from vibe_research.llm.planner import OfflinePlanner
    from vibe_research.lm.errors import UserError

    name = _schema_name(body)
    if name == "RubricReply":
        scores = {
            key: rng.randint(3, 8) for key in ("grammar", "creativity", "consistency", "plot")
        }
        reply: dict[str, Any] = scores | {"rationale": "Readable, with a thin plot."}
    elif name == "PairwiseReply":
        reply = {"winner": rng.choice(["A", "B", "tie"]), "rationale": "Closer to an ending."}
    elif name in ("Proposal", "Suggestions"):
        files = _quoted_files(body)
        context = ResearchContext(messages=[], files=files, history=_tried(body, files))
        planner = OfflinePlanner()
        try:
            answer = planner.propose(context) if name == "Proposal" else planner.suggest(context)
        except UserError as exc:
            return Scripted(500, error=f"ScriptedOpenAIServer: {exc}")
        reply = answer.model_dump(exclude_none=True)
    else:
        return Scripted(500, error=f"ScriptedOpenAIServer: no answer for the schema {name!r}")
    return Scripted(200, content=json.dumps(reply))


def completion(body: dict[str, Any], item: Scripted) -> dict[str, Any]:
    """A chat.completion object as OpenAI's API returns it."""
    content = item.content or ""
    usage = item.usage or {
        "prompt_tokens": _estimated_prompt_tokens(body),
        "completion_tokens": len(content) // 4 + 1,
    }
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODELS[0]),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": item.finish_reason,
            }
        ],
        "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
    }


def _handler_for(server: ScriptedOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the tests read server.requests instead."""

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": m, "object": "model", "owned_by": "test"} for m in MODELS],
                    },
                )
            else:
                self._send(
                    404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.endswith("/chat/completions"):
                self._send(
                    404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                )
                return
            item = server._next(body)
            if item.hang:
                self._hang()
                return
            time.sleep(item.delay_s)
            if item.status == 200:
                self._send(200, completion(body, item))
            elif item.body is not None:
                self._send(item.status, item.body, item.headers)
            else:
                error = {"message": item.error, "type": "scripted_error", "code": str(item.status)}
                self._send(item.status, {"error": error}, item.headers)

        def _hang(self) -> None:
            """Answer nothing until the client closes the connection (it gave up) or the server stops."""
            while not server._stopping.is_set():
                readable, _, _ = select.select([self.connection], [], [], HANG_POLL_S)
                try:
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        return
                except ConnectionResetError:
                    return
            self.close_connection = True

        def _send(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

    return Handler


@contextmanager
def server_process(*args: str, log: bool = False) -> Iterator[tuple[str, subprocess.Popen]]:
    """This file as its own process on a free port, as a researcher's endpoint would be: its base
    URL and the process. `log`: keep its per-request lines on a pipe (read them after SIGTERM);
    otherwise they are dropped, so a long soak never fills the pipe and blocks the server."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if log else subprocess.DEVNULL,
        text=True,
    )
    try:
        address = process.stdout.readline().strip()
        assert address.startswith("http://127.0.0.1:"), process.stderr.read() if log else address
        yield address, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="An OpenAI-compatible server on 127.0.0.1 that answers valid replies and, "
        "at --fail-rate, the faults a real endpoint produces."
    )
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of faulty answers")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument(
        "--faults",
        default=",".join(TRANSIENT_FAULTS),
        help=f"comma-separated fault modes to draw from, of: {', '.join(FAULTS)}",
    )
    parser.add_argument(
        "--reject-json-schema",
        action="store_true",
        help="play a server without structured outputs (HTTP 400 for a json_schema response format)",
    )
    args = parser.parse_args()
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error(f"--fail-rate {args.fail_rate} is not between 0 and 1")
    faults = tuple(name.strip() for name in args.faults.split(",") if name.strip())
    try:
        server = ScriptedOpenAIServer(
            reject_json_schema=args.reject_json_schema,
            fail_rate=args.fail_rate,
            seed=args.seed,
            faults=faults,
            port=args.port,
            log_requests=True,
        )
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        print(server.base_url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
