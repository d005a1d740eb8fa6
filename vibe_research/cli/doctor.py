"""`vibe-research doctor`: what this machine and workspace can do, and what to fix.

The same checks run before every `continue` turn. Each returns a `Check`: ok, warn (works, but
say it loudly), or fail (a turn cannot start), with a detail line and, when not ok, what to do.
"""

import json
import logging
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from vibe_research.lm.errors import UserError

if TYPE_CHECKING:
    from vibe_research.research.settings import Settings
    from vibe_research.research.workspace import Workspace

log = logging.getLogger(__name__)

Level = Literal["ok", "warn", "fail"]


class Check(BaseModel):
    name: str
    level: Level
    detail: str
    fix: str = ""


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def check_device() -> Check:
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check(name="device", level="ok", detail=f"cuda: {names}")
    if torch.backends.mps.is_available():
        return Check(name="device", level="ok", detail=f"mps ({platform.machine()})")
    flags = _cpu_flags()
    extras = [
        name
        for name, flag in (("AVX-512", "avx512f"), ("AMX", "amx_tile"), ("AVX2", "avx2"))
        if flag in flags
    ]
    detail = f"cpu: {os.cpu_count()} cores{', ' + ', '.join(extras) if extras else ''}; torch {torch.__version__}"
    return Check(name="device", level="ok", detail=detail)


def check_precision() -> Check:
    """What the trainer's dtype and compile `auto` settings can use here: native bf16, and the
    compiler torch.compile needs (a C++ compiler for inductor on CPU, triton on CUDA)."""
    import shutil

    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        bf16 = torch.cuda.is_bf16_supported()
        try:
            import triton

            compiler = f"triton {triton.__version__}"
        except ImportError:
            compiler = ""
        detail = (
            f"bf16 {'native' if bf16 else 'not supported'} (compute capability {major}.{minor})"
        )
        where = "CUDA"
    elif torch.backends.mps.is_available():
        return Check(
            name="precision", level="ok", detail="mps: fp32 and bf16; torch.compile is not used"
        )
    else:
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        native = [
            name
            for name, probe in zip(("AMX", "AVX512-BF16"), probes, strict=True)
            if getattr(torch.cpu, probe, lambda: False)()
        ]
        detail = (
            f"bf16 {'native (' + ', '.join(native) + ')' if native else 'emulated: fp32 is used'}"
        )
        compiler = next((name for name in ("g++", "c++", "clang++") if shutil.which(name)), "")
        where = "CPU"
    if not compiler:
        return Check(
            name="precision",
            level="warn",
            detail=f"{detail}; no compiler for torch.compile on {where}",
            fix="install g++ (CPU) or triton (CUDA), or train with --set compile=off",
        )
    return Check(name="precision", level="ok", detail=f"{detail}; torch.compile with {compiler}")


def check_data(workspace: "Workspace", settings: "Settings") -> Check:
    data = settings.data
    if data.source == "synthetic":
        return Check(
            name="data",
            level="warn",
            detail="synthetic stories: results are not TinyStories results",
            fix="set [data] train and valid in vibe-research.toml, or VIBE_DATA",
        )
    if data.source == "files" or (data.source == "auto" and data.train):
        from vibe_research.lm.corpus import files_split

        try:
            train = files_split("train", data.train, data.text_column, workspace.root)
            valid = files_split(
                "valid", [data.valid] if data.valid else [], data.text_column, workspace.root
            )
        except UserError as exc:
            return Check(
                name="data", level="fail", detail=str(exc), fix="fix [data] in vibe-research.toml"
            )
        return Check(
            name="data",
            level="ok",
            detail=f"files: {train.count} train stories, {valid.count} valid stories ({valid.description})",
        )
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    detail = f"hub: {data.hub_dataset} ({'offline mode set' if offline else 'needs network'})"
    if data.source == "auto":
        detail += "; falls back to synthetic stories when unreachable"
    return Check(name="data", level="warn" if offline else "ok", detail=detail)


def check_tokens(workspace: "Workspace", spec: str) -> Check:
    """Token caches of both splits for the tokenizer `spec`."""
    from vibe_research.lm.tokens import open_split

    try:
        train = open_split("train", spec, workspace.cache)
        valid = open_split("valid", spec, workspace.cache)
    except UserError as exc:
        log.debug("%s", exc)
        return Check(
            name=f"tokens {spec}",
            level="fail",
            detail="no token cache for this tokenizer yet",
            fix=f"vibe-research data prepare --tokenizer {spec}",
        )
    per = train.manifest.bytes / max(train.manifest.tokens, 1)
    return Check(
        name=f"tokens {spec}",
        level="ok",
        detail=f"train {train.manifest.tokens:,} tokens ({per:.2f} bytes/token), valid {valid.manifest.tokens:,} tokens",
    )


def check_sandbox(workspace: "Workspace") -> tuple[Check, dict]:
    from vibe_research.sandbox.policy import load_policy
    from vibe_research.sandbox.probe import probe

    try:
        policy = load_policy(workspace.sandbox_file)
    except UserError as exc:
        return Check(
            name="sandbox", level="fail", detail=str(exc), fix=f"fix {workspace.sandbox_file}"
        ), {}
    report = probe(policy)
    active = [item.name for item in report.protections if item.active]
    missing = report.missing()
    if policy.mode == "none":
        return Check(
            name="sandbox",
            level="warn",
            detail='sandbox.mode = "none": runs have your full access',
            fix='set mode = "auto" in sandbox.toml',
        ), report.model_dump()
    level: Level = "warn" if missing else "ok"
    detail = f"active: {', '.join(active) or 'none'}"
    if missing:
        detail += "; OFF: " + "; ".join(f"{item.name} ({item.detail})" for item in missing)
    return Check(name="sandbox", level=level, detail=detail), report.model_dump()


def check_llm(settings: "Settings") -> Check:
    """Which proposer runs, and whether its endpoint answers (a models listing, 5 s at most)."""
    from vibe_research.llm.proposer import resolve_backend

    llm = settings.llm
    if resolve_backend(llm) == "offline":
        return Check(
            name="llm",
            level="ok",
            detail="offline planner (no endpoint configured); judge: heuristic",
            fix=""
            if llm.backend == "offline"
            else "set OPENAI_API_KEY or [llm] base_url to use an LLM",
        )
    import openai

    where = llm.base_url or "api.openai.com"
    client = openai.OpenAI(
        base_url=llm.base_url,
        api_key=os.environ.get(llm.api_key_env) or "none",
        timeout=5.0,
        max_retries=0,
    )
    try:
        models = [model.id for model in client.models.list()]
    except openai.OpenAIError as exc:
        return Check(
            name="llm",
            level="fail",
            detail=f"{where}: {type(exc).__name__}: {str(exc)[:160]}",
            fix='start the server, fix [llm] base_url or the API key, or set [llm] backend = "offline"',
        )
    missing = [m for m in (llm.proposer_model, llm.judge_model) if models and m not in models]
    detail = f"{where}: proposer {llm.proposer_model}, judge {llm.judge_model}"
    if missing:
        return Check(
            name="llm",
            level="warn",
            detail=f"{detail}; the server does not list {', '.join(missing)}",
            fix="name served models in [llm] proposer_model / judge_model",
        )
    return Check(name="llm", level="ok", detail=detail)


def check_git(workspace: "Workspace") -> Check:
    from vibe_research.research.gitops import DirtyExperiments, check_ready

    try:
        untracked = check_ready(workspace.root)
    except DirtyExperiments as exc:
        return Check(name="experiments", level="fail", detail=str(exc))
    except UserError as exc:
        return Check(name="git", level="fail", detail=str(exc))
    if untracked:
        return Check(
            name="git",
            level="ok",
            detail=f"on a branch; new files of yours in experiments/, left alone: {', '.join(untracked)}",
        )
    return Check(name="git", level="ok", detail="on a branch, experiments/ committed")


def check_cluster(settings: "Settings") -> Check | None:
    if settings.train.executor != "ray":
        return None
    from vibe_research.runs.ray_executor import cluster_check

    try:
        facts = cluster_check(settings.train.ray)
    except UserError as exc:
        return Check(
            name="ray",
            level="fail",
            detail=str(exc),
            fix="start the cluster or fix [train.ray] address",
        )
    alive = [node for node in facts["nodes"] if node["alive"]]
    detail = (
        f"{facts['address']} (ray {facts['ray']}): {len(alive)} node(s) alive, "
        f"{facts['total'].get('CPU', 0):g} CPUs, {facts['total'].get('GPU', 0):g} GPUs; {facts['runs_at_once']} run(s) at once"
    )
    return Check(
        name="ray",
        level="ok" if facts["runs_at_once"] else "warn",
        detail=detail,
        fix=""
        if facts["runs_at_once"]
        else "no node fits one run: lower [train.ray] resources per run",
    )


def check_entry(workspace: "Workspace", settings: "Settings") -> Check:
    entry = workspace.root / settings.train.entry
    if not entry.is_file():
        return Check(
            name="experiment",
            level="fail",
            detail=f"{settings.train.entry} does not exist",
            fix="restore it (`git checkout -- experiments/`), or set [train] entry in vibe-research.toml",
        )
    return Check(name="experiment", level="ok", detail=settings.train.entry)


def run_checks(workspace: "Workspace", settings: "Settings") -> tuple[list[Check], dict]:
    """Every check, in the order a person reads them; and the sandbox protection report."""
    checks = [
        check_device(),
        check_precision(),
        check_data(workspace, settings),
        check_tokens(workspace, settings.data.tokenizer),
        check_llm(settings),
    ]
    sandbox, report = check_sandbox(workspace)
    checks += [sandbox, check_git(workspace), check_entry(workspace, settings)]
    cluster = check_cluster(settings)
    if cluster is not None:
        checks.append(cluster)
    return checks, report


STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """Check device, data, tokenizer caches, LLM endpoint, sandbox protections and git state."""
    from vibe_research.research.settings import load_settings
    from vibe_research.research.workspace import find_workspace

    workspace = find_workspace()
    settings = load_settings(workspace.settings_file)
    checks, sandbox_report = run_checks(workspace, settings)
    if as_json:
        print(
            json.dumps(
                {
                    "workspace": str(workspace.root),
                    "checks": [c.model_dump() for c in checks],
                    "sandbox": sandbox_report,
                },
                indent=2,
            )
        )
    else:
        table = Table(title=f"vibe-research doctor: {workspace.root}", title_justify="left")
        for column in ("check", "", "detail", "to do"):
            table.add_column(column, overflow="fold")
        for check in checks:
            table.add_row(check.name, STYLE[check.level], check.detail, check.fix)
        Console().print(table)
    if any(check.level == "fail" for check in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
