"""An OpenAI-compatible chat client that answers in pydantic models, retries, logs and counts cost.

Works against OpenAI and servers that speak its chat-completions API (vLLM, Ollama, llama.cpp,
LM Studio). It asks for a JSON-schema response format first; a server that rejects that gets
the schema in the prompt instead. A reply that does not validate gets one repair round that
quotes the validation error. 429, 5xx, timeouts and refused connections are retried with
exponential backoff, all within llm.deadline_s per structured call. Every HTTP call is one JSON
line in the workspace's call log, and the spend ledger read from it holds llm.max_usd for every
client of the workspace together. Failures are the classes of llm.errors.
"""

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vibe_research.llm.calllog import CallRecord, Mode, Totals, ledger_for
from vibe_research.llm.errors import (
    ContextTooLong,
    DeadlineExceeded,
    EndpointUnavailable,
    InvalidReply,
    NoAPIKey,
    RequestRejected,
    context_overflow,
)
from vibe_research.llm.prompts import render
from vibe_research.llm.settings import LLMSettings
from vibe_research.llm.tokens import count_message_tokens, count_tokens

log = logging.getLogger(__name__)

Reply = TypeVar("Reply", bound=BaseModel)
# Statuses worth asking again: a request timeout, a conflict, rate limits; and every 5xx.
RETRY_STATUSES = {408, 409, 429}
# Statuses a context overflow comes with: 400 (OpenAI, vLLM, llama.cpp, Ollama), 413, 422.
OVERFLOW_STATUSES = {400, 413, 422}


class _Retryable(Exception):
    """A failure worth another try (429, 5xx, timeout, connection)."""

    def __init__(
        self, message: str, retry_after_s: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # what the server asked for in its Retry-After header
        self.status = status


class LLMClient:
    def __init__(self, settings: LLMSettings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.ledger = ledger_for(log_path)
        self._mode: Mode = "json_schema"  # until the server rejects response_format
        self._unpriced_warned: set[str] = set()
        self._api: Any = None

    @property
    def totals(self) -> Totals:
        """What the workspace has spent so far: every client's calls, this one's included."""
        return self.ledger.totals()

    def structured(
        self, messages: list[dict[str, str]], model_cls: type[Reply], model: str
    ) -> Reply:
        """Ask `model` and return its reply validated as `model_cls`, after at most one repair
        round, within llm.deadline_s; raises an llm.errors.LLMError otherwise."""
        deadline = time.monotonic() + self.settings.deadline_s
        content = self._complete(messages, model_cls, model, deadline)
        try:
            return parse_reply(content, model_cls)
        except ValueError as exc:
            problem = describe_parse_error(exc)
        log.warning(
            "%s reply did not fit %s (%s); asking once for a repair",
            model,
            model_cls.__name__,
            problem,
        )
        repair = [
            *messages,
            {"role": "assistant", "content": content},
            {"role": "user", "content": render("repair.md", error=problem)},
        ]
        content = self._complete(repair, model_cls, model, deadline)
        try:
            return parse_reply(content, model_cls)
        except ValueError as exc:
            raise InvalidReply(
                f"{model} twice answered with no valid {model_cls.__name__} ({describe_parse_error(exc)}); "
                'try a stronger model in vibe-research.toml [llm] or llm.backend = "offline"'
            ) from exc

    def _complete(
        self,
        messages: list[dict[str, str]],
        model_cls: type[BaseModel],
        model: str,
        deadline: float,
    ) -> str:
        """One reply's text, retrying 429, 5xx and timeouts with exponential backoff until the
        attempts run out (EndpointUnavailable) or the deadline would pass (DeadlineExceeded)."""
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._call(messages, model_cls, model, attempt, deadline)
            except _Retryable as exc:
                last = exc
            left = deadline - time.monotonic()
            if left > 0 and attempt + 1 == attempts:
                break
            wait = min(
                self.settings.max_backoff_s,
                max(self.settings.retry_backoff_s * 2**attempt, last.retry_after_s or 0.0),
            )
            if wait >= left:
                raise DeadlineExceeded(
                    f"{model} at {self._where()}: no usable reply within llm.deadline_s = "
                    f"{self.settings.deadline_s:g} s ({attempt + 1} attempts, the last: {last}); "
                    "check the server, or raise llm.deadline_s in vibe-research.toml"
                )
            log.warning(
                "%s: %s; retry %d of %d in %.1f s (%.0f s left of llm.deadline_s)",
                model,
                last,
                attempt + 1,
                attempts - 1,
                wait,
                left,
            )
            time.sleep(wait)
        raise EndpointUnavailable(
            f"{model} at {self._where()}: {last} on all {attempts} attempts; "
            "check the server, or raise llm.max_retries / llm.timeout_s in vibe-research.toml",
            status=last.status,
        )

    def _call(
        self,
        messages: list[dict[str, str]],
        model_cls: type[BaseModel],
        model: str,
        attempt: int,
        deadline: float,
    ) -> str:
        import openai

        api = self._client()
        timeout = min(self.settings.timeout_s, deadline - time.monotonic())
        if timeout <= 0:
            raise _Retryable("llm.deadline_s reached")
        mode = self._mode
        sent = messages if mode == "json_schema" else with_schema_instruction(messages, model_cls)
        counted = count_message_tokens(sent)
        # The worst case: the prompt as counted here and a reply as long as allowed.
        ticket = self.ledger.reserve(
            self._cost(model, counted, self.settings.max_output_tokens), self.settings.max_usd
        )
        call = {
            "model": model,
            "reply_schema": model_cls.__name__,
            "mode": mode,
            "attempt": attempt,
            "messages": sent,
        }
        started = time.monotonic()
        try:
            response = api.chat.completions.create(
                **self._request(sent, model_cls, model, mode), timeout=timeout
            )
        except openai.APIError as exc:
            self._record(call, started, None, _error_text(exc), None, ticket)
            failure = self._classify(exc, model, timeout, counted)
            if (
                isinstance(failure, RequestRejected)
                and mode == "json_schema"
                and failure.status in (400, 422)
            ):
                log.info(
                    "%s rejected a JSON-schema response format (%s); sending the schema in the prompt",
                    self._where(),
                    _error_text(exc),
                )
                self._mode = "text"
                return self._call(messages, model_cls, model, attempt, deadline)
            raise failure from exc
        except BaseException:
            self.ledger.release(ticket)  # interrupted (Ctrl-C): the call is not in flight any more
            raise
        content = (response.choices[0].message.content or "") if response.choices else ""
        self._record(call, started, content, None, response.usage, ticket)
        if response.choices and response.choices[0].finish_reason == "length":
            log.warning(
                "%s stopped at llm.max_output_tokens = %d; raise it if replies come back cut off",
                model,
                self.settings.max_output_tokens,
            )
        return content

    def _request(
        self, messages: list[dict[str, str]], model_cls: type[BaseModel], model: str, mode: Mode
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_output_tokens,
        }
        if mode == "json_schema":
            schema = {
                "name": model_cls.__name__,
                "schema": model_cls.model_json_schema(),
                "strict": False,
            }
            request["response_format"] = {"type": "json_schema", "json_schema": schema}
        return request

    def _client(self) -> Any:
        import openai

        if self._api is None:
            key = os.environ.get(self.settings.api_key_env)
            if not key and not self.settings.base_url:
                raise NoAPIKey(
                    f"no API key: set ${self.settings.api_key_env}, or llm.base_url for a local server, "
                    'or llm.backend = "offline" in vibe-research.toml'
                )
            # Local servers ignore the key, but the client insists on one. Its own retries are
            # off: _complete retries, within llm.deadline_s.
            self._api = openai.OpenAI(
                base_url=self.settings.base_url,
                api_key=key or "unused",
                timeout=self.settings.timeout_s,
                max_retries=0,
            )
        return self._api

    def _classify(self, exc: Exception, model: str, timeout: float, counted: int) -> Exception:
        """The exception for a failed HTTP call: _Retryable, ContextTooLong or RequestRejected."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            if timeout < self.settings.timeout_s:
                return _Retryable(
                    f"no reply within {timeout:.1f} s, what was left of llm.deadline_s"
                )
            return _Retryable(f"no reply within llm.timeout_s = {self.settings.timeout_s:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return _Retryable(f"connection failed ({exc})")
        status = getattr(exc, "status_code", None)
        text = _error_text(exc)
        if status in OVERFLOW_STATUSES:
            overflow = context_overflow(getattr(exc, "body", None), text)
            if overflow is not None:
                return self._too_long(model, text, *overflow, counted)
        if status is not None and (status in RETRY_STATUSES or status >= 500):
            return _Retryable(f"HTTP {status} ({text})", _retry_after_s(exc), status)
        hint = {
            401: f"check the key in ${self.settings.api_key_env}",
            403: f"check the key in ${self.settings.api_key_env} and its access to {model}",
            404: "check llm.base_url and the model name in vibe-research.toml",
        }.get(status, "check llm.base_url and the model settings in vibe-research.toml")
        return RequestRejected(f"{model} at {self._where()}: HTTP {status}: {text}; {hint}", status)

    def _too_long(
        self, model: str, text: str, limit: int | None, server_prompt: int | None, counted: int
    ) -> ContextTooLong:
        out = self.settings.max_output_tokens
        if limit is not None and limit <= out:
            hint = f"lower llm.max_output_tokens (now {out}) below the model's context of {limit} tokens"
        else:
            hint = f"lower llm.prompt_token_budget (now {self.settings.prompt_token_budget})"
        return ContextTooLong(
            f"{model} at {self._where()}: the prompt is over the model's context ({text}); {hint} in vibe-research.toml",
            server_message=text,
            limit=limit,
            server_prompt_tokens=server_prompt,
            counted_prompt_tokens=counted,
            max_output_tokens=out,
        )

    def _where(self) -> str:
        return self.settings.base_url or "api.openai.com"

    def _cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.settings.price(model)
        if price is None:
            if model not in self._unpriced_warned:
                self._unpriced_warned.add(model)
                log.warning(
                    'no price for %s: its calls count as $0; add [llm.prices."%s"] to vibe-research.toml',
                    model,
                    model,
                )
            return 0.0
        return (
            prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
        ) / 1e6

    def _record(
        self,
        call: dict[str, Any],
        started: float,
        content: str | None,
        error: str | None,
        usage: Any,
        ticket: int,
    ) -> None:
        """Append the call to the workspace's call log, which the spend ledger counts."""
        prompt_tokens, completion_tokens = _token_counts(usage, call["messages"], content)
        record = CallRecord(
            **call,
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            response=content,
            error=error,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=round(time.monotonic() - started, 3),
            cost_usd=self._cost(call["model"], prompt_tokens, completion_tokens),
        )
        self.ledger.record(record, ticket)


def _token_counts(
    usage: Any, messages: list[dict[str, str]], content: str | None
) -> tuple[int, int]:
    """The server's own usage figures; counted here where it sent none (some local servers)."""
    if usage is not None:
        return usage.prompt_tokens or 0, usage.completion_tokens or 0
    if content is not None:
        return count_message_tokens(messages), count_tokens(content)
    return 0, 0


def with_schema_instruction(
    messages: list[dict[str, str]], model_cls: type[BaseModel]
) -> list[dict[str, str]]:
    """The messages with the JSON schema spelled out in the system message, for servers without
    structured outputs. It joins the first system message because some chat templates allow only one."""
    schema = json.dumps(model_cls.model_json_schema(), indent=1)
    instruction = render("json_reply.md", name=model_cls.__name__, schema=schema)
    if messages and messages[0]["role"] == "system":
        return [
            {"role": "system", "content": f"{messages[0]['content'].rstrip()}\n\n{instruction}"},
            *messages[1:],
        ]
    return [{"role": "system", "content": instruction}, *messages]


def _retry_after_s(exc: Any) -> float | None:
    """Retry-After in seconds; the HTTP-date form is rare from these APIs and is ignored."""
    try:
        return float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _error_text(exc: Exception) -> str:
    """The server's own message where it sent one, on one line."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(message or exc).split())


def parse_reply(content: str, model_cls: type[Reply]) -> Reply:
    """The JSON object in `content` (bare, fenced, or with prose around it) validated as `model_cls`."""
    start, end = content.find("{"), content.rfind("}")
    if start < 0:
        raise ValueError("the reply holds no JSON object")
    # Without a closing brace the JSON parser's own message says where the object broke off.
    return model_cls.model_validate_json(
        content[start : end + 1] if end > start else content[start:]
    )


def describe_parse_error(exc: ValueError) -> str:
    """The validation error as the model should read it: every problem with its field path."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
        for e in exc.errors()[:8]
    ]
    return "; ".join(problems)
