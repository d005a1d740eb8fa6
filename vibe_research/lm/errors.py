"""Domain errors that become one clear line at the CLI boundary, and TOML loading into pydantic."""

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError


class UserError(Exception):
    """Bad input the user can fix: a missing file, a malformed setting, an unknown spec.

    The CLI prints `str(error)` as one line and exits with code 2. The message says what is
    wrong and what to do.
    """


Model = TypeVar("Model", bound=BaseModel)


def validation_error_line(source: str, error: ValidationError) -> str:
    """One line naming the source, the key (dotted) and what is wrong with its first error."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = len(error.errors()) - 1
    extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {key}: {first['msg']}{extra}"


def load_toml_model(path: Path, model: type[Model], overrides: dict | None = None) -> Model:
    """Read `path` (missing file means all defaults) into `model`; `overrides` win over the file."""
    data: dict = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise UserError(
                f"{path}: malformed TOML: {exc}; fix the file or delete it to use defaults"
            ) from exc
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.rpartition(".")
        target = data
        for part in filter(None, section.split(".")):
            target = target.setdefault(part, {})
        target[key] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(validation_error_line(str(path), exc)) from exc
