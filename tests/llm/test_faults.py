"""Every fault a real endpoint produces ends in its own LLMError subclass, within llm.deadline_s."""

import re
import time
from pathlib import Path
from typing import Literal

import pytest
from openai_server import TRANSIENT_FAULTS, ScriptedOpenAIServer
from pydantic import BaseModel
from test_client import GOOD, MESSAGES

from vibe_research.llm.client import LLMClient
from vibe_research.llm.errors import (
    ContextTooLong,
    DeadlineExceeded,
    EndpointUnavailable,
    InvalidReply,
    LLMError,
    RequestRejected,
    context_overflow,
)
from vibe_research.llm.schemas import Proposal
from vibe_research.llm.settings import LLMSettings

SLACK_S = 0.5  # over a deadline: the last request's teardown and this machine's load


# A prompt of some 10,000 tokens, as a proposer's is; the fault server names a context 3/4 of it.
LONG = [MESSAGES[0], {"role": "user", "content": "The notes say: wider was better. " * 1_200}]


class PairwiseReply(BaseModel):
    """The judge's pairwise schema as the server knows it by name (research/judge/llm.py)."""

    winner: Literal["A", "B", "tie"]
    rationale: str


def _client(settings: LLMSettings, tmp_path: Path) -> LLMClient:
    return LLMClient(settings, tmp_path / "llm-calls.jsonl")


def test_the_defaults_give_up_on_a_hung_endpoint_in_about_two_minutes():
    settings = LLMSettings()
    # each attempt waits at most timeout_s and never past the deadline, so deadline_s bounds the
    # whole call; a retry after a first attempt that hung still fits in it
    assert settings.deadline_s <= 120
    assert settings.timeout_s + settings.retry_backoff_s < settings.deadline_s
    # without the deadline the attempts alone would wait far longer: the deadline is what binds
    assert (settings.max_retries + 1) * settings.timeout_s > settings.deadline_s


def test_a_hung_server_gives_up_at_the_deadline_not_the_attempt_timeout(
    server, fast_settings, tmp_path
):
    server.fault("hang", times=10)
    client = _client(fast_settings(timeout_s=30, deadline_s=1.0, max_retries=4), tmp_path)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"no usable reply within llm.deadline_s = 1 s"):
        client.structured(MESSAGES, Proposal, "test-model")
    assert time.monotonic() - started < 1.0 + SLACK_S
    assert len(server.requests) == 1


def test_retries_of_a_hung_server_stop_at_the_deadline(server, fast_settings, tmp_path, caplog):
    server.fault("hang", times=20)
    client = _client(fast_settings(timeout_s=0.3, deadline_s=1.0, max_retries=10), tmp_path)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"the last: no reply within"):
        client.structured(MESSAGES, Proposal, "test-model")
    assert time.monotonic() - started < 1.0 + SLACK_S
    assert 3 <= len(server.requests) <= 5
    retries = [r.message for r in caplog.records if "retry" in r.message]
    assert len(retries) == len(server.requests) - 1
    assert "retry 1 of 10 in 0.0 s" in retries[0] and "left of llm.deadline_s" in retries[0]


def test_a_retry_after_past_the_deadline_gives_up_at_once(server, fast_settings, tmp_path):
    server.fail(429, "slow down", headers={"Retry-After": "30"})
    server.reply_json(GOOD)
    client = _client(fast_settings(deadline_s=5, max_backoff_s=60), tmp_path)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"HTTP 429 \(slow down\)"):
        client.structured(MESSAGES, Proposal, "test-model")
    assert time.monotonic() - started < 1.0 and len(server.requests) == 1


@pytest.mark.parametrize(
    ("fault", "limit"),
    [
        ("context_openai", True),
        ("context_vllm", True),
        ("context_llamacpp", True),
        ("context_ollama", False),
    ],
)
def test_a_context_length_400_is_its_own_error_not_a_missing_json_schema(
    server, fast_settings, tmp_path, fault, limit
):
    server.fault(fault)
    server.reply_json(GOOD)  # what a switch to text mode would wrongly get
    client = _client(fast_settings(prompt_token_budget=12_000), tmp_path)

    with pytest.raises(ContextTooLong) as raised:
        client.structured(LONG, Proposal, "test-model")

    error = raised.value
    assert len(server.requests) == 1 and server.pending == 1
    assert server.requests[0]["response_format"]["type"] == "json_schema"
    assert client._mode == "json_schema"
    assert "lower llm.prompt_token_budget (now 12000) in vibe-research.toml" in str(error)
    assert error.server_message and error.server_message in str(error)
    assert (error.limit is not None) == limit and error.kind == "context_length"
    budget = error.smaller_budget()
    assert 0 < budget < error.counted_prompt_tokens


def test_the_smaller_budget_fits_the_limit_the_server_names(server, fast_settings, tmp_path):
    server.fault("context_openai")
    client = _client(fast_settings(max_output_tokens=64), tmp_path)
    with pytest.raises(ContextTooLong) as raised:
        client.structured(LONG, Proposal, "test-model")
    error = raised.value
    assert error.limit is not None and error.server_prompt_tokens is not None
    # the server counts its own tokens: the budget is scaled to ours, with room for the reply
    ours_per_theirs = error.counted_prompt_tokens / error.server_prompt_tokens
    assert error.smaller_budget() <= (error.limit - 64) * ours_per_theirs


def test_an_output_cap_over_the_whole_context_names_max_output_tokens(
    server, fast_settings, tmp_path
):
    server.fault("context_llamacpp")  # n_ctx: 3/4 of the prompt, under the 256-token output cap
    with pytest.raises(ContextTooLong, match=r"lower llm.max_output_tokens \(now 256\)"):
        _client(fast_settings(), tmp_path).structured(MESSAGES, Proposal, "test-model")


def test_an_unsupported_response_format_still_falls_back_to_the_prompt(
    server, fast_settings, tmp_path
):
    server.fault("no_json_schema")
    server.reply_json(GOOD)
    client = _client(fast_settings(), tmp_path)

    assert client.structured(MESSAGES, Proposal, "test-model").title == GOOD["title"]
    assert [("response_format" in request) for request in server.requests] == [True, False]


@pytest.mark.parametrize(
    ("fault", "error", "kind", "requests"),
    [
        ("rate_limit", EndpointUnavailable, "unavailable", 5),
        ("server_error", EndpointUnavailable, "unavailable", 5),
        ("hang", DeadlineExceeded, "deadline", None),
        ("not_json", InvalidReply, "invalid_reply", 2),
        ("wrong_schema", InvalidReply, "invalid_reply", 2),
        ("unauthorized", RequestRejected, "rejected", 1),
        ("context_openai", ContextTooLong, "context_length", 1),
        ("context_vllm", ContextTooLong, "context_length", 1),
    ],
)
def test_each_fault_mode_gives_its_typed_error(
    server, fast_settings, tmp_path, fault, error, kind, requests
):
    server.fault(fault, times=5)
    # five attempts of 0.3 s: more than the deadline, so a hang ends at the deadline
    client = _client(fast_settings(timeout_s=0.3, deadline_s=1.0, max_retries=4), tmp_path)

    with pytest.raises(error) as raised:
        client.structured(MESSAGES, Proposal, "test-model")

    assert raised.value.kind == kind and isinstance(raised.value, LLMError)
    assert "\n" not in str(raised.value)
    assert re.search(r"; (check|lower|raise|try) ", str(raised.value)), "it says what to do"
    if requests is not None:
        assert len(server.requests) == requests
    if isinstance(raised.value, EndpointUnavailable | RequestRejected):
        assert raised.value.status == {"rate_limit": 429, "server_error": 500}.get(fault, 401)


def test_not_found_is_rejected_at_once(server, fast_settings, tmp_path):
    server.fail(404, "The model `nope` does not exist")
    with pytest.raises(RequestRejected, match=r"HTTP 404: .*check llm.base_url and the model name"):
        _client(fast_settings(), tmp_path).structured(MESSAGES, Proposal, "test-model")
    assert len(server.requests) == 1


def test_at_a_30_percent_fault_rate_every_call_answers_or_fails_typed(fast_settings, tmp_path):
    with ScriptedOpenAIServer(fail_rate=0.3, seed=1) as server:
        client = _client(
            fast_settings(base_url=server.base_url, timeout_s=0.2, deadline_s=1.0, max_retries=3),
            tmp_path,
        )
        outcomes = []
        messages = [{"role": "user", "content": "Which story is better, A or B?"}]
        for _ in range(30):
            try:
                client.structured(messages, PairwiseReply, "test-judge")
                outcomes.append("answered")
            except LLMError as exc:
                outcomes.append(exc.kind)
    assert outcomes.count("answered") >= 20
    assert set(outcomes) <= {"answered", "deadline", "unavailable", "invalid_reply"}
    assert len(set(server.served) & set(TRANSIENT_FAULTS)) >= 3


@pytest.mark.parametrize(
    ("body", "text", "found"),
    [
        (
            {"code": "context_length_exceeded", "type": "invalid_request_error"},
            "Input tokens exceed the configured limit of 272000 tokens. Your messages resulted in 301234 tokens.",
            (272000, 301234),
        ),
        (
            {"code": 400, "type": "BadRequestError"},
            "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum "
            "context length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778).",
            (4096, 2778),
        ),
        (
            {},
            "The decoder prompt (length 12324) is longer than the maximum model length of 8192.",
            (8192, 12324),
        ),
        (
            {"type": "exceed_context_size_error", "n_ctx": 4096, "n_prompt_tokens": 4476},
            "request (4476 tokens) exceeds the available context size (4096 tokens), try increasing it",
            (4096, 4476),
        ),
        ({}, "the input length exceeds the context length", (None, None)),
        ({}, "response_format of type json_schema is not supported by this server", None),
        (
            {},
            "Invalid schema for response_format 'Proposal': 'additionalProperties' is required",
            None,
        ),
        ({"code": "invalid_api_key"}, "Incorrect API key provided", None),
    ],
)
def test_context_overflow_is_read_from_each_servers_words(body, text, found):
    assert context_overflow(body, text) == found
