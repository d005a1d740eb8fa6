"""The LLM client against a real local OpenAI-compatible HTTP server."""

import json
import socket
import time
from pathlib import Path

import pytest
from openai_server import ScriptedOpenAIServer

from vibe_research.llm.calllog import CallRecord
from vibe_research.llm.client import LLMClient
from vibe_research.llm.errors import BudgetExceeded, LLMError
from vibe_research.llm.schemas import Proposal, Suggestions
from vibe_research.llm.settings import Price
from vibe_research.llm.tokens import count_message_tokens

GOOD = {
    "title": "Wider residual stream",
    "hypothesis": "n_embd 256 lowers bpb in the same five minutes",
    "rationale": "wider was better at every size tried",
    "expected_effect": "bpb -0.02",
    "risk": "low",
    "edits": [
        {"path": "experiments/train.py", "search": '"n_embd": 192,', "replace": '"n_embd": 256,'}
    ],
    "runs": [{"seeds": [0, 1, 2], "overrides": {}}],
}
MESSAGES = [
    {"role": "system", "content": "You are a researcher."},
    {"role": "user", "content": "Propose the next experiment."},
]


def _records(path: Path) -> list[CallRecord]:
    return [CallRecord.model_validate_json(line) for line in path.read_text().splitlines()]


def test_reply_in_json_schema_mode_is_parsed_logged_and_counted(server, fast_settings, tmp_path):
    server.reply_json(GOOD, usage={"prompt_tokens": 120, "completion_tokens": 80})
    log_path = tmp_path / ".vibe" / "llm-calls.jsonl"
    client = LLMClient(
        fast_settings(prices={"test-model": Price(input_per_mtok=2.0, output_per_mtok=8.0)}),
        log_path,
    )

    proposal = client.structured(MESSAGES, Proposal, "test-model")

    assert proposal.edits[0].replace == '"n_embd": 256,'
    sent = server.requests[0]
    assert sent["model"] == "test-model" and sent["messages"] == MESSAGES
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "Proposal"
    assert "edits" in sent["response_format"]["json_schema"]["schema"]["properties"]
    (record,) = _records(log_path)
    assert record.messages == MESSAGES and json.loads(record.response or "") == GOOD
    assert (record.prompt_tokens, record.completion_tokens, record.error) == (120, 80, None)
    assert record.cost_usd == pytest.approx((120 * 2.0 + 80 * 8.0) / 1e6)
    assert record.latency_s >= 0
    assert client.totals.calls == 1 and client.totals.cost_usd == pytest.approx(record.cost_usd)


def test_malformed_json_gets_one_repair_round_quoting_the_error(server, fast_settings, tmp_path):
    server.reply_text('Here is my proposal: {"title": "Wider residual stream", "risk": ')
    server.reply_text("```json\n" + json.dumps(GOOD) + "\n```")
    client = LLMClient(fast_settings(), tmp_path / "calls.jsonl")

    proposal = client.structured(MESSAGES, Proposal, "test-model")

    assert proposal.title == GOOD["title"]
    assert len(server.requests) == 2
    repair = server.requests[1]["messages"]
    assert repair[:2] == MESSAGES
    assert repair[2] == {
        "role": "assistant",
        "content": 'Here is my proposal: {"title": "Wider residual stream", "risk": ',
    }
    assert "Invalid JSON" in repair[3]["content"] and "could not be used" in repair[3]["content"]


def test_reply_cut_at_the_token_cap_is_repaired_and_the_cap_named(
    server, fast_settings, tmp_path, caplog
):
    server.reply_text(json.dumps(GOOD)[:120], finish_reason="length")
    server.reply_json(GOOD)
    client = LLMClient(fast_settings(), tmp_path / "calls.jsonl")

    assert client.structured(MESSAGES, Proposal, "test-model").title == GOOD["title"]
    assert "stopped at llm.max_output_tokens = 256" in caplog.text
    assert "EOF while parsing" in server.requests[1]["messages"][-1]["content"]


def test_schema_violation_is_repaired_with_the_field_named(server, fast_settings, tmp_path):
    server.reply_json(GOOD | {"risk": "extreme"})
    server.reply_json(GOOD)
    client = LLMClient(fast_settings(), tmp_path / "calls.jsonl")

    assert client.structured(MESSAGES, Proposal, "test-model").risk == "low"
    assert (
        "risk: Input should be 'low', 'medium' or 'high'"
        in server.requests[1]["messages"][-1]["content"]
    )


def test_schema_violation_twice_is_a_clear_error(server, fast_settings, tmp_path):
    server.reply_json({"title": "Wider"})
    server.reply_json({"title": "Wider", "hypothesis": "still missing the rest"})
    client = LLMClient(fast_settings(), tmp_path / "calls.jsonl")

    with pytest.raises(
        LLMError, match=r"twice answered with no valid Proposal \(rationale: Field required"
    ):
        client.structured(MESSAGES, Proposal, "test-model")
    assert len(server.requests) == 2


def test_429_is_retried_then_succeeds(server, fast_settings, tmp_path):
    server.fail(429, "Rate limit reached for requests")
    server.reply_json(GOOD)
    log_path = tmp_path / "calls.jsonl"
    client = LLMClient(fast_settings(), log_path)

    assert client.structured(MESSAGES, Proposal, "test-model").title == GOOD["title"]
    first, second = _records(log_path)
    assert "Rate limit reached" in (first.error or "") and first.response is None
    assert second.error is None and second.attempt == 1
    assert client.totals.calls == 2 and client.totals.failed_calls == 1


def test_retry_after_header_is_honoured_up_to_the_backoff_cap(server, fast_settings, tmp_path):
    server.fail(429, "slow down", headers={"Retry-After": "0.4"})
    server.reply_json(GOOD)
    client = LLMClient(fast_settings(max_backoff_s=0.3), tmp_path / "calls.jsonl")

    started = time.monotonic()
    client.structured(MESSAGES, Proposal, "test-model")
    assert 0.3 <= time.monotonic() - started < 1.5
    assert client.totals.summary().startswith("LLM: 2 calls (1 failed), ")


def test_repeated_500s_end_in_an_error_after_the_last_retry(server, fast_settings, tmp_path):
    for _ in range(3):
        server.fail(500, "upstream crashed")
    client = LLMClient(fast_settings(max_retries=2), tmp_path / "calls.jsonl")

    with pytest.raises(
        LLMError, match=r"HTTP 500 \(upstream crashed\) on all 3 attempts; check the server"
    ):
        client.structured(MESSAGES, Proposal, "test-model")
    assert len(server.requests) == 3 and server.pending == 0


def test_timeouts_are_retried_and_then_reported(server, fast_settings, tmp_path):
    server.reply_json(GOOD, delay_s=1.0)
    server.reply_json(GOOD, delay_s=1.0)
    client = LLMClient(fast_settings(timeout_s=0.3, max_retries=1), tmp_path / "calls.jsonl")

    started = time.monotonic()
    with pytest.raises(LLMError, match=r"no reply within llm.timeout_s = 0.3 s on all 2 attempts"):
        client.structured(MESSAGES, Proposal, "test-model")
    assert time.monotonic() - started < 2.0
    assert len(server.requests) == 2


def test_a_timeout_then_a_reply_succeeds(server, fast_settings, tmp_path):
    server.reply_json(GOOD, delay_s=1.0)
    server.reply_json(GOOD)
    client = LLMClient(fast_settings(timeout_s=0.3), tmp_path / "calls.jsonl")

    assert client.structured(MESSAGES, Proposal, "test-model").title == GOOD["title"]


def test_no_server_listening_is_retried_then_reported(fast_settings, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = LLMClient(
        fast_settings(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1),
        tmp_path / "calls.jsonl",
    )

    with pytest.raises(LLMError, match=r"connection failed .* on all 2 attempts"):
        client.structured(MESSAGES, Proposal, "test-model")
    assert client.totals.failed_calls == 2


def test_unauthorised_is_not_retried_and_names_the_key_variable(server, fast_settings, tmp_path):
    server.fail(401, "Incorrect API key provided")
    client = LLMClient(fast_settings(api_key_env="MY_LLM_KEY"), tmp_path / "calls.jsonl")

    with pytest.raises(
        LLMError, match=r"HTTP 401: Incorrect API key provided; check the key in \$MY_LLM_KEY"
    ):
        client.structured(MESSAGES, Proposal, "test-model")
    assert len(server.requests) == 1


def test_server_without_json_schema_gets_the_schema_in_the_prompt(fast_settings, tmp_path):
    with ScriptedOpenAIServer(reject_json_schema=True) as server:
        server.reply_json(GOOD)
        server.reply_json(
            {"items": [_suggestion("Wider model"), _suggestion("Distill from a 4-gram")]}
        )
        client = LLMClient(fast_settings(base_url=server.base_url), tmp_path / "calls.jsonl")

        assert client.structured(MESSAGES, Proposal, "test-model").title == GOOD["title"]
        assert len(client.structured(MESSAGES, Suggestions, "test-model").items) == 2

    rejected, text_mode, later = server.requests
    assert "response_format" in rejected
    assert "response_format" not in text_mode and "response_format" not in later
    system, user = text_mode["messages"]
    assert system["role"] == "system" and system["content"].startswith(MESSAGES[0]["content"])
    assert "`Proposal`" in system["content"] and '"edits"' in system["content"]
    assert user == MESSAGES[1]
    assert "`Suggestions`" in later["messages"][0]["content"]


def test_cost_cap_stops_before_a_call_that_could_pass_it(server, fast_settings, tmp_path):
    server.reply_json(GOOD, usage={"prompt_tokens": 100_000, "completion_tokens": 50_000})
    server.reply_json(GOOD)
    price = Price(input_per_mtok=2.0, output_per_mtok=8.0)
    settings = fast_settings(max_usd=0.5, prices={"test-model": price})
    log_path = tmp_path / "calls.jsonl"
    client = LLMClient(settings, log_path)

    client.structured(MESSAGES, Proposal, "test-model")  # the worst case fits: $0.002 of $0.50
    assert client.totals.cost_usd == pytest.approx(0.2 + 0.4)

    with pytest.raises(
        BudgetExceeded, match=r"llm.max_usd = \$0.5 would be passed: \$0.6000 spent"
    ):
        client.structured(MESSAGES, Proposal, "test-model")
    assert len(server.requests) == 1

    # The spend is the workspace's, read back from the call log by the next client.
    again = LLMClient(settings, log_path)
    assert again.totals.cost_usd == pytest.approx(0.6)
    with pytest.raises(BudgetExceeded):
        again.structured(MESSAGES, Proposal, "test-model")
    assert len(server.requests) == 1


def test_cap_counts_the_worst_case_reply(server, fast_settings, tmp_path):
    price = Price(input_per_mtok=2.0, output_per_mtok=8.0)
    prompt_cost = count_message_tokens(MESSAGES) * 2.0 / 1e6
    worst = prompt_cost + 256 * 8.0 / 1e6
    client = LLMClient(
        fast_settings(max_usd=worst * 0.99, prices={"test-model": price}), tmp_path / "calls.jsonl"
    )

    with pytest.raises(BudgetExceeded):
        client.structured(MESSAGES, Proposal, "test-model")
    assert server.requests == []


def test_torn_last_log_line_is_skipped(server, fast_settings, tmp_path):
    log_path = tmp_path / "calls.jsonl"
    server.reply_json(GOOD, usage={"prompt_tokens": 10, "completion_tokens": 5})
    LLMClient(fast_settings(), log_path).structured(MESSAGES, Proposal, "test-model")
    with log_path.open("a") as handle:
        handle.write('{"v": 1, "time": "2026-')

    assert LLMClient(fast_settings(), log_path).totals.prompt_tokens == 10


def _suggestion(title: str) -> dict:
    return {
        "title": title,
        "idea": "i",
        "why": "w",
        "expected_effect": "e",
        "cost_minutes": 15,
        "risk": "low",
    }
