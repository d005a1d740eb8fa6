"""An OpenAI-compatible chat client that answers in pydantic models, retries, logs and counts cost.

Works against OpenAI and servers that speak its chat-completions API (vLLM, Ollama, llama.cpp,
LM Studio). It asks for a JSON-schema response format first; a server that rejects that gets
the schema in the prompt instead. A reply that does not validate gets one repair round that
quotes the validation error. Every HTTP call is one JSON line in the call log.
"""

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from vibe_research.llm.prompts import render
from vibe_research.llm.settings import LLMSettings
from vibe_research.llm.tokens import count_message_tokens, count_tokens
from vibe_research.lm.errors import UserError

log = logging.getLogger(__name__)

Reply = TypeVar("Reply", bound=BaseModel)
Mode = Literal["json_schema", "text"]
LOG_FORMAT = 1


class LLMError(UserError):
    """The endpoint failed or answered unusably; the message says what to change."""


class BudgetExceeded(LLMError):
    """The next call could pass llm.max_usd."""


class Totals(BaseModel):
    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def summary(self) -> str:
        """One line for the user, e.g. `LLM: 3 calls (1 failed), 12,040 + 2,311 tokens, $0.0426`."""
        failed = f" ({self.failed_calls} failed)" if self.failed_calls else ""
        return f"LLM: {self.calls} calls{failed}, {self.prompt_tokens:,} + {self.completion_tokens:,} tokens, ${self.cost_usd:.4f}"


class CallRecord(BaseModel):
    """One line of the call log."""

    v: int = LOG_FORMAT
    time: str
    model: str
    reply_schema: str
    mode: Mode
    attempt: int
    messages: list[dict[str, str]]
    response: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float


class _Retryable(Exception):
    """A failure worth another try (429, 5xx, timeout, connection)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # what the server asked for in its Retry-After header


class LLMClient:
    def __init__(self, settings: LLMSettings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.totals = totals_from_log(log_path)
        self._mode: Mode = "json_schema"  # until the server rejects response_format
        self._unpriced_warned: set[str] = set()
        self._api: Any = None

    def structured(
        self, messages: list[dict[str, str]], model_cls: type[Reply], model: str
    ) -> Reply:
        """Ask `model` and return its reply validated as `model_cls`, after at most one repair round."""
        content = self._complete(messages, model_cls, model)
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
        content = self._complete(repair, model_cls, model)
        try:
            return parse_reply(content, model_cls)
        except ValueError as exc:
            raise LLMError(
                f"{model} twice answered with no valid {model_cls.__name__} ({describe_parse_error(exc)}); "
                'try a stronger model in vibe-research.toml [llm] or llm.backend = "offline"'
            ) from exc

    def _complete(
        self, messages: list[dict[str, str]], model_cls: type[BaseModel], model: str
    ) -> str:
        """One reply's text, retrying 429, 5xx and timeouts with exponential backoff."""
        attempts = self.settings.max_retries + 1
        wait = 0.0
        for attempt in range(attempts):
            time.sleep(wait)
            try:
                return self._call(messages, model_cls, model, attempt)
            except _Retryable as exc:
                last = str(exc)
                log.warning("%s: %s (attempt %d of %d)", model, last, attempt + 1, attempts)
                wait = min(
                    self.settings.max_backoff_s,
                    max(self.settings.retry_backoff_s * 2**attempt, exc.retry_after_s or 0.0),
                )
        raise LLMError(
            f"{model} at {self._where()}: {last} on all {attempts} attempts; "
            "check the server, or raise llm.max_retries / llm.timeout_s in vibe-research.toml"
        )

    def _call(
        self, messages: list[dict[str, str]], model_cls: type[BaseModel], model: str, attempt: int
    ) -> str:
        import openai

        mode = self._mode
        sent = messages if mode == "json_schema" else with_schema_instruction(messages, model_cls)
        self._check_budget(sent, model)
        call = {
            "model": model,
            "reply_schema": model_cls.__name__,
            "mode": mode,
            "attempt": attempt,
            "messages": sent,
        }
        started = time.monotonic()
        try:
            response = self._client().chat.completions.create(
                **self._request(sent, model_cls, model, mode)
            )
        except openai.APIError as exc:
            self._record(call, started, None, _error_text(exc), None)
            if mode == "json_schema" and getattr(exc, "status_code", None) in (400, 422):
                log.info(
                    "%s rejected a JSON-schema response format (%s); sending the schema in the prompt",
                    self._where(),
                    _error_text(exc),
                )
                self._mode = "text"
                return self._call(messages, model_cls, model, attempt)
            raise self._classify(exc, model) from exc
        content = (response.choices[0].message.content or "") if response.choices else ""
        self._record(call, started, content, None, response.usage)
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
                raise LLMError(
                    f"no API key: set ${self.settings.api_key_env}, or llm.base_url for a local server, "
                    'or llm.backend = "offline" in vibe-research.toml'
                )
            # Local servers ignore the key, but the client insists on one.
            self._api = openai.OpenAI(
                base_url=self.settings.base_url,
                api_key=key or "unused",
                timeout=self.settings.timeout_s,
                max_retries=0,
            )
        return self._api

    def _classify(self, exc: Exception, model: str) -> Exception:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return _Retryable(f"no reply within llm.timeout_s = {self.settings.timeout_s:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return _Retryable(f"connection failed ({exc})")
        if isinstance(exc, openai.RateLimitError | openai.InternalServerError):
            return _Retryable(f"HTTP {exc.status_code} ({_error_text(exc)})", _retry_after_s(exc))
        status = getattr(exc, "status_code", None)
        hint = {
            401: f"check the key in ${self.settings.api_key_env}",
            403: f"check the key in ${self.settings.api_key_env} and its access to {model}",
            404: "check llm.base_url and the model name in vibe-research.toml",
        }.get(status, "check llm.base_url and the model settings in vibe-research.toml")
        return LLMError(f"{model} at {self._where()}: HTTP {status}: {_error_text(exc)}; {hint}")

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

    def _check_budget(self, messages: list[dict[str, str]], model: str) -> None:
        cap = self.settings.max_usd
        if cap is None:
            return
        # The worst case: the prompt as counted here and a reply as long as allowed.
        estimate = self._cost(
            model, count_message_tokens(messages), self.settings.max_output_tokens
        )
        if self.totals.cost_usd + estimate > cap:
            raise BudgetExceeded(
                f"llm.max_usd = ${cap:g} would be passed: ${self.totals.cost_usd:.4f} spent (see {self.log_path}), "
                f"next call up to ${estimate:.4f}; raise llm.max_usd in vibe-research.toml"
            )

    def _record(
        self,
        call: dict[str, Any],
        started: float,
        content: str | None,
        error: str | None,
        usage: Any,
    ) -> None:
        """Count the call into the totals and append it to the call log."""
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
        _add(self.totals, record)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(record.model_dump_json() + "\n")


def _token_counts(
    usage: Any, messages: list[dict[str, str]], content: str | None
) -> tuple[int, int]:
    """The server's own usage figures; counted here where it sent none (some local servers)."""
    if usage is not None:
        return usage.prompt_tokens or 0, usage.completion_tokens or 0
    if content is not None:
        return count_message_tokens(messages), count_tokens(content)
    return 0, 0


def _add(totals: Totals, record: CallRecord) -> None:
    totals.calls += 1
    totals.failed_calls += record.error is not None
    totals.prompt_tokens += record.prompt_tokens
    totals.completion_tokens += record.completion_tokens
    totals.cost_usd += record.cost_usd


def totals_from_log(log_path: Path) -> Totals:
    """What the workspace has spent so far; a torn last line (a killed writer) is skipped."""
    totals = Totals()
    if not log_path.exists():
        return totals
    for number, line in enumerate(log_path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            _add(totals, CallRecord.model_validate_json(line))
        except ValidationError:
            log.warning("%s:%d: unreadable call record skipped", log_path, number)
    return totals


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
