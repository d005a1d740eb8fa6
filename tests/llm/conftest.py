"""Fixtures for the LLM layer: the scripted server and client settings that fail fast."""

from collections.abc import Callable, Iterator

import pytest
from openai_server import ScriptedOpenAIServer

from vibe_research.llm.settings import LLMSettings


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as scripted:
        yield scripted


@pytest.fixture
def fast_settings(server: ScriptedOpenAIServer) -> Callable[..., LLMSettings]:
    """LLMSettings pointed at `server`, with millisecond backoff and a 1 s timeout."""

    def make(**overrides: object) -> LLMSettings:
        values: dict = {
            "base_url": server.base_url,
            "proposer_model": "test-model",
            "judge_model": "test-judge",
            "timeout_s": 1.0,
            "max_retries": 2,
            "retry_backoff_s": 0.01,
            "max_backoff_s": 0.05,
            "max_output_tokens": 256,
            "max_usd": None,
        }
        return LLMSettings.model_validate(values | overrides)

    return make
