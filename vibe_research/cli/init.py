"""`vibe-research init`: lay out a new research workspace from the package templates and commit it."""

import json
import logging
import shutil
import tomllib
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console

from vibe_research.lm.errors import UserError
from vibe_research.research.workspace import SANDBOX_FILE, SETTINGS_FILE, Workspace

log = logging.getLogger(__name__)

GITIGNORE = ".vibe/\n__pycache__/\n*.pyc\n"


def _template(name: str) -> Path:
    return Path(str(resources.files("vibe_research") / "templates" / name))


def _planned_files(root: Path) -> dict[Path, Path | str]:
    """Destination -> template file (or literal text) for everything `init` writes."""
    files: dict[Path, Path | str] = {
        root / SETTINGS_FILE: _template("vibe-research.toml"),
        root / SANDBOX_FILE: _template("sandbox.toml"),
        root / "notes" / "README.md": _template("notes/README.md"),
        root / ".gitignore": GITIGNORE,
    }
    for source in sorted(_template("experiments").glob("*.py")):
        files[root / "experiments" / source.name] = source
    return files


def _data_block(data: Path) -> str:
    folder = data.expanduser().resolve()
    if not (folder / "valid.txt").is_file() or not list(folder.glob("train*.txt")):
        raise UserError(
            f"--data {data}: expected a folder with train*.txt and valid.txt; point it at one (for example ../shared/data/tinystories)"
        )
    lines = (
        f'source = "files"\ntrain = ["{folder / "train*.txt"}"]\nvalid = "{folder / "valid.txt"}"\n'
    )
    if (folder / "test.txt").is_file():
        lines += f'test = "{folder / "test.txt"}"   # sealed: scored only for the best\n'
    return lines


def _settings_text(template: Path, data: Path | None) -> str:
    text = template.read_text(encoding="utf-8")
    if data is None:
        return text
    head, sep, tail = text.partition("[data]\n")
    text = (
        head
        + sep
        + _data_block(data)
        + "\n".join(
            line
            for line in tail.splitlines()
            if not line.startswith(("source =", "train =", "# valid =", "# test ="))
        )
        + "\n"
    )
    tomllib.loads(text)  # the template edit must stay valid TOML
    return text


def init_workspace(root: Path, data: Path | None = None) -> Workspace:
    """Create the workspace at `root`; refuse if any file it would write already exists."""
    import git

    root = root.expanduser().resolve()
    planned = _planned_files(root)
    clashes = [path for path in planned if path.exists()]
    if clashes:
        raise UserError(
            f"{clashes[0]} already exists: init never overwrites; choose an empty folder"
        )
    settings = _settings_text(_template("vibe-research.toml"), data)
    for destination, source in planned.items():
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.name == SETTINGS_FILE:
            destination.write_text(settings, encoding="utf-8")
        elif isinstance(source, Path):
            shutil.copyfile(source, destination)
        else:
            destination.write_text(source, encoding="utf-8")
    (root / "notes" / "experiments").mkdir(exist_ok=True)
    (root / "notes" / "figures").mkdir(exist_ok=True)
    repo = (
        git.Repo(root) if (root / ".git").exists() else git.Repo.init(root, initial_branch="main")
    )
    repo.index.add([str(path.relative_to(root)) for path in planned])
    if not repo.config_reader().has_option("user", "email"):
        with repo.config_writer() as config:
            config.set_value("user", "name", "vibe-research").set_value(
                "user", "email", "vibe-research@localhost"
            )
    repo.index.commit("Start the research workspace (vibe-research init)")
    log.debug("created workspace %s", root)
    return Workspace(root)


def init(
    folder: Path = typer.Argument(Path("."), help="Folder for the workspace (created if missing)."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Folder with train*.txt and valid.txt to use as the data source.",
        envvar="VIBE_DATA",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create a research workspace: notes/, experiments/, sandbox.toml, vibe-research.toml, git."""
    workspace = init_workspace(folder, data)
    if as_json:
        print(json.dumps({"workspace": str(workspace.root)}))
        return
    console = Console()
    console.print(f"[green]Created[/] research workspace in [bold]{workspace.root}[/]")
    console.print(f"Next: [bold]cd {folder}[/] and [bold]vibe-research continue[/]")


def register(app: typer.Typer) -> None:
    app.command()(init)
