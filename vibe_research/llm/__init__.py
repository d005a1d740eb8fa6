"""The LLM layer: OpenAI-compatible client, structured outputs, accounting, the offline planner."""
