"""Judge results cached by (sample hash, judge model, rubric version) under .vibe/cache/judge.

An LLM judge call costs money and seconds; the same story asked of the same judge with the same
rubric gets the stored answer. One small JSON file per key, written atomically.
"""

import hashlib
import logging
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from vibe_research.lm.atomic import write_text

log = logging.getLogger(__name__)

Value = TypeVar("Value", bound=BaseModel)


def cache_key(*parts: str) -> str:
    """sha256 of the parts, separated so ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


class JudgeCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, model_cls: type[Value]) -> Value | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return model_cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError:
            # written by an older rubric layout: the judge answers afresh and overwrites it
            log.warning("%s: stale judge cache entry, judging again", path)
            return None

    def put(self, key: str, value: BaseModel) -> None:
        write_text(self._path(key), value.model_dump_json())
