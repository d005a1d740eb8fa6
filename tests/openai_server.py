"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

Real HTTP, so the real `openai` client is exercised end to end. Each test queues what the
server answers, in order: JSON or raw text replies, HTTP errors, each optionally delayed.

    with ScriptedOpenAIServer() as server:
        server.reply_json({"title": ...})
        server.fail(429)
        settings = LLMSettings(base_url=server.base_url, ...)
        ...
        assert len(server.requests) == 2   # the JSON bodies the client sent

`reject_json_schema=True` plays a server without structured outputs: a request that asks for
a JSON-schema response format gets HTTP 400 and consumes nothing from the queue.
"""

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ["test-model", "test-judge"]


@dataclass(frozen=True)
class Scripted:
    status: int
    content: str | None = None  # the assistant's text, for status 200
    error: str = ""
    delay_s: float = 0.0
    usage: dict[str, int] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"  # "length": the reply was cut at max_tokens


class ScriptedOpenAIServer:
    def __init__(self, *, reject_json_schema: bool = False) -> None:
        self.reject_json_schema = reject_json_schema
        self.requests: list[dict[str, Any]] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
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

    def _push(self, item: Scripted) -> None:
        with self._lock:
            self._script.append(item)

    def _next(self, body: dict[str, Any]) -> Scripted:
        with self._lock:
            self.requests.append(body)
            wants_schema = (body.get("response_format") or {}).get("type") == "json_schema"
            if self.reject_json_schema and wants_schema:
                return Scripted(
                    400, error="response_format of type json_schema is not supported by this server"
                )
            if not self._script:
                return Scripted(
                    500, error="ScriptedOpenAIServer: no scripted reply left for this request"
                )
            return self._script.popleft()

    def __enter__(self) -> "ScriptedOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def completion(body: dict[str, Any], item: Scripted) -> dict[str, Any]:
    """A chat.completion object as OpenAI's API returns it."""
    content = item.content or ""
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    usage = item.usage or {
        "prompt_tokens": prompt_chars // 4 + 1,
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
            time.sleep(item.delay_s)
            if item.status == 200:
                self._send(200, completion(body, item))
            else:
                error = {"message": item.error, "type": "scripted_error", "code": str(item.status)}
                self._send(item.status, {"error": error}, item.headers)

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
