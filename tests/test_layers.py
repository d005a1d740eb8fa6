"""The import graph keeps DESIGN.md's layering: every arrow points down, with no exception.

Every `import` of every module counts, those inside functions and under TYPE_CHECKING included:
a lazy import is still a dependency.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vibe_research"

# layer -> the layers it may import (itself included)
ALLOWED = {
    "lm": {"lm"},
    "sandbox": {"sandbox", "lm"},
    "runs": {"runs", "sandbox", "lm"},
    "llm": {"llm", "lm"},
    "research": {"research", "runs", "llm", "lm"},
    "ui": {"ui", "research", "runs", "llm", "lm"},
    "cli": {"cli", "ui", "research", "runs", "llm", "sandbox", "lm"},
}
# inside research/, lowest first: a part may import its own level and the levels before it
RESEARCH_LEVELS = [
    {"settings", "workspace", "stats"},
    {"state"},
    {"gitops"},
    {"judge"},
    {"notes", "propose"},
    {"loop"},
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == "vibe_research"}


def _part(module: str, depth: int) -> str | None:
    parts = module.split(".")
    return parts[depth] if len(parts) > depth else None


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(REPO).with_suffix("")
        if "templates" in relative.parts:
            continue
        found.append((".".join(relative.parts).removesuffix(".__init__"), path))
    return found


def _level(name: str | None) -> int:
    return next(i for i, level in enumerate(RESEARCH_LEVELS) if name in level)


def test_every_import_between_layers_points_down() -> None:
    wrong = []
    for module, path in _modules():
        layer = _part(module, 1)
        if layer is None or layer not in ALLOWED:
            continue  # vibe_research/__init__.py and __main__.py sit above everything
        for imported in _imports(path):
            target = _part(imported, 1)
            if target in ALLOWED and target not in ALLOWED[layer]:
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "layering broken:\n" + "\n".join(wrong)


def test_every_layer_is_known() -> None:
    layers = {
        path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"
    }
    assert layers - {"templates", "prompts"} <= set(ALLOWED)


def test_the_parts_of_research_import_only_those_below_them() -> None:
    parts = {name for level in RESEARCH_LEVELS for name in level}
    on_disk = {path.stem for path in (PACKAGE / "research").iterdir() if path.stem != "__init__"}
    assert on_disk - {"__pycache__"} == parts, "a research part is missing from RESEARCH_LEVELS"
    wrong = []
    for module, path in _modules():
        if _part(module, 1) != "research" or _part(module, 2) is None:
            continue
        own = _level(_part(module, 2))
        for imported in _imports(path):
            target = _part(imported, 2)
            if _part(imported, 1) == "research" and target in parts and _level(target) > own:
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "research/ layering broken:\n" + "\n".join(wrong)


def test_experiments_import_only_the_measurement_core() -> None:
    experiments = [
        *sorted((PACKAGE / "templates" / "experiments").glob("*.py")),
        *sorted((REPO / "experiments").glob("*.py")),
    ]
    assert experiments
    wrong = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in experiments
        for name in _imports(path)
        if _part(name, 1) != "lm"
    ]
    assert not wrong, "\n".join(wrong)
