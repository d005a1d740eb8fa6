"""Choosing the backend, and the LLM backend's answers through the local server."""

import pytest

from vibe_research.llm.context import ResearchContext
from vibe_research.llm.errors import LLMError
from vibe_research.llm.planner import OfflinePlanner
from vibe_research.llm.proposer import LLMProposer, make_proposer
from vibe_research.llm.settings import LLMSettings

CONTEXT = ResearchContext(messages=[{"role": "user", "content": "Offer next steps."}], files={})


def _item(title: str, move: str | None = None) -> dict:
    return {
        "title": title,
        "idea": "i",
        "why": "w",
        "expected_effect": "e",
        "cost_minutes": 15,
        "risk": "low",
        "move": move,
    }


def test_auto_without_endpoint_or_key_is_the_offline_planner(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert isinstance(make_proposer(LLMSettings(), tmp_path / "calls.jsonl"), OfflinePlanner)
    assert isinstance(
        make_proposer(LLMSettings(backend="offline", base_url="http://x/v1"), tmp_path / "c.jsonl"),
        OfflinePlanner,
    )


def test_auto_with_a_base_url_or_a_key_uses_the_llm(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    by_url = make_proposer(
        LLMSettings(base_url="http://127.0.0.1:9/v1", proposer_model="m"), tmp_path / "calls.jsonl"
    )
    assert isinstance(by_url, LLMProposer) and by_url.name == "llm:m"
    monkeypatch.setenv("MY_KEY", "sk-test")
    assert isinstance(
        make_proposer(LLMSettings(api_key_env="MY_KEY"), tmp_path / "calls.jsonl"), LLMProposer
    )


def test_openai_backend_without_key_or_url_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    proposer = make_proposer(LLMSettings(backend="openai"), tmp_path / "calls.jsonl")
    with pytest.raises(LLMError, match=r"no API key: set \$OPENAI_API_KEY, or llm.base_url"):
        proposer.suggest(CONTEXT)


def test_llm_suggestions_come_back_without_planner_move_keys(server, fast_settings, tmp_path):
    server.reply_json(
        {
            "items": [
                _item("Distill from a 4-gram", move="distill/200:distill_steps=200"),
                _item("Shallow fusion"),
            ]
        }
    )
    proposer = make_proposer(fast_settings(), tmp_path / "calls.jsonl")

    suggestions = proposer.suggest(CONTEXT)

    assert [item.title for item in suggestions.items] == ["Distill from a 4-gram", "Shallow fusion"]
    assert all(item.move is None for item in suggestions.items)
    assert server.requests[0]["messages"] == CONTEXT.messages
    assert server.requests[0]["response_format"]["json_schema"]["name"] == "Suggestions"


def test_one_suggestion_is_not_enough(server, fast_settings, tmp_path):
    server.reply_json({"items": [_item("Only one idea")]})
    server.reply_json({"items": [_item("Still only one")]})
    with pytest.raises(LLMError, match="items: List should have at least 2 items"):
        make_proposer(fast_settings(), tmp_path / "calls.jsonl").suggest(CONTEXT)
