"""One spend ledger for every LLM call of a workspace: the proposer's client, the judge's, other
processes, calls still in flight; all held to llm.max_usd together."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_client import GOOD, MESSAGES

from vibe_research.llm.calllog import CallRecord, SpendLedger
from vibe_research.llm.client import LLMClient
from vibe_research.llm.errors import BudgetExceeded
from vibe_research.llm.schemas import Proposal
from vibe_research.llm.settings import Price
from vibe_research.llm.tokens import count_message_tokens

# $1 per thousand tokens either way: a call is worth cents, so a few calls reach a $1 cap.
PRICE = Price(input_per_mtok=1_000.0, output_per_mtok=1_000.0)
PROMPT = count_message_tokens(MESSAGES)
COMPLETION = 200  # tokens of each scripted reply, under max_output_tokens = 256
CALL_USD = (PROMPT + COMPLETION) * 1e-3
ESTIMATE_USD = (PROMPT + 256) * 1e-3  # the worst case the client checks before each call


def _priced(fast_settings, max_usd: float):
    return fast_settings(max_usd=max_usd, prices={"test-model": PRICE, "test-judge": PRICE})


def _reply(server, times: int, delay_s: float = 0.0) -> None:
    for _ in range(times):
        server.reply_json(
            GOOD,
            usage={"prompt_tokens": PROMPT, "completion_tokens": COMPLETION},
            delay_s=delay_s,
        )


def _spent(log_path: Path) -> float:
    return sum(
        CallRecord.model_validate_json(line).cost_usd
        for line in log_path.read_text().splitlines()
        if line.strip()
    )


def test_proposer_and_judge_clients_hold_the_cap_together(server, fast_settings, tmp_path):
    cap = 1.0
    _reply(server, 10)
    log_path = tmp_path / ".vibe" / "llm-calls.jsonl"
    settings = _priced(fast_settings, cap)
    proposer, judge = LLMClient(settings, log_path), LLMClient(settings, log_path)

    with pytest.raises(BudgetExceeded) as refused:
        for turn in range(10):
            client, model = (proposer, "test-model") if turn % 2 == 0 else (judge, "test-judge")
            client.structured(MESSAGES, Proposal, model)

    calls = len(server.requests)
    assert _spent(log_path) == pytest.approx(calls * CALL_USD)
    assert _spent(log_path) <= cap < _spent(log_path) + ESTIMATE_USD
    # the line shows the workspace's total, both clients' calls
    assert f"${calls * CALL_USD:.4f} spent by this workspace" in str(refused.value)
    assert refused.value.spent_usd == pytest.approx(calls * CALL_USD)
    assert proposer.totals == judge.totals and proposer.totals.calls == calls


def test_another_process_on_the_same_log_counts_before_the_next_call(
    server, fast_settings, tmp_path
):
    cap = 1.0
    log_path = tmp_path / "llm-calls.jsonl"
    settings = _priced(fast_settings, cap)
    here = LLMClient(settings, log_path)  # made before the other process spends
    calls_there = int((cap - ESTIMATE_USD) // CALL_USD) + 1  # past what leaves room for one more
    _reply(server, calls_there + 1)
    script = (
        "import sys\n"
        "from vibe_research.llm.client import LLMClient\n"
        "from vibe_research.llm.schemas import Proposal\n"
        "from vibe_research.llm.settings import LLMSettings\n"
        "settings = LLMSettings.model_validate_json(sys.argv[1])\n"
        "client = LLMClient(settings, __import__('pathlib').Path(sys.argv[2]))\n"
        f"for _ in range({calls_there}):\n"
        f"    client.structured({MESSAGES!r}, Proposal, 'test-model')\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, settings.model_dump_json(), str(log_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0, other.stderr[-2000:]

    with pytest.raises(BudgetExceeded, match=rf"\${calls_there * CALL_USD:.4f} spent"):
        here.structured(MESSAGES, Proposal, "test-judge")
    assert len(server.requests) == calls_there
    assert _spent(log_path) <= cap


def test_calls_in_flight_count_against_the_cap(server, fast_settings, tmp_path):
    # room for one call's worst case, not two: of two calls sent at once, one must wait its turn
    _reply(server, 2, delay_s=0.5)
    settings = _priced(fast_settings, ESTIMATE_USD * 1.5)
    log_path = tmp_path / "llm-calls.jsonl"
    clients = [LLMClient(settings, log_path), LLMClient(settings, log_path)]
    outcomes: list[str] = []

    def ask(client: LLMClient) -> None:
        try:
            client.structured(MESSAGES, Proposal, "test-model")
            outcomes.append("answered")
        except BudgetExceeded as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=ask, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(server.requests) == 1
    assert sorted(outcomes)[0] == "answered"
    assert "in calls under way" in sorted(outcomes)[1]


def test_a_torn_last_line_never_swallows_the_next_record(server, fast_settings, tmp_path):
    log_path = tmp_path / "llm-calls.jsonl"
    log_path.write_text('{"v": 1, "time": "2026-')  # a writer killed mid-line
    _reply(server, 1)
    LLMClient(_priced(fast_settings, 10.0), log_path).structured(MESSAGES, Proposal, "test-model")

    fresh = SpendLedger(log_path).totals()  # as another process reads the log
    assert fresh.calls == 1 and fresh.cost_usd == pytest.approx(CALL_USD)


def test_the_ledger_reads_only_what_was_appended(server, fast_settings, tmp_path):
    log_path = tmp_path / "llm-calls.jsonl"
    _reply(server, 2)
    client = LLMClient(_priced(fast_settings, 10.0), log_path)
    client.structured(MESSAGES, Proposal, "test-model")
    assert client.totals.calls == 1
    # Spoil the counted line in place (same length): a re-read of the whole log would skip it.
    text = log_path.read_text()
    log_path.write_text("#" * (len(text) - 1) + "\n")

    client.structured(MESSAGES, Proposal, "test-model")

    assert client.totals.calls == 2 and client.totals.cost_usd == pytest.approx(2 * CALL_USD)
    assert SpendLedger(log_path).totals().calls == 1  # a fresh reader sees the spoilt line
