"""What this machine and workspace can do, checked before a turn and shown by `vibe-research doctor`.

Each check returns a `Check`: ok, warn (works, but say it loudly), or fail (a turn cannot start),
with a detail line and, when not ok, what to do.
"""

import logging
import os
import platform
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vibe_research.lm.errors import UserError
from vibe_research.settings import Settings
from vibe_research.workspace import Workspace

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
    extras = [name for name, flag in (("AVX-512", "avx512f"), ("AMX", "amx_tile"), ("AVX2", "avx2")) if flag in flags]
    detail = f"cpu: {os.cpu_count()} cores{', ' + ', '.join(extras) if extras else ''}; torch {torch.__version__}"
    return Check(name="device", level="ok", detail=detail)


def check_data(workspace: Workspace, settings: Settings) -> Check:
    data = settings.data
    if data.source == "synthetic":
        return Check(name="data", level="warn", detail="synthetic stories: results are not TinyStories results",
                     fix="set [data] train and valid in vibe-research.toml, or VIBE_DATA")
    if data.source == "files" or (data.source == "auto" and data.train):
        from vibe_research.lm.corpus import files_split

        try:
            train = files_split("train", data.train, data.text_column, workspace.root)
            valid = files_split("valid", [data.valid] if data.valid else [], data.text_column, workspace.root)
        except UserError as exc:
            return Check(name="data", level="fail", detail=str(exc), fix="fix [data] in vibe-research.toml")
        return Check(name="data", level="ok", detail=f"files: {train.count} train stories, {valid.count} valid stories ({valid.description})")
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    detail = f"hub: {data.hub_dataset} ({'offline mode set' if offline else 'needs network'})"
    if data.source == "auto":
        detail += "; falls back to synthetic stories when unreachable"
    return Check(name="data", level="warn" if offline else "ok", detail=detail)


def check_tokens(workspace: Workspace, spec: str) -> Check:
    """Token caches of both splits for the tokenizer `spec`."""
    from vibe_research.lm.tokens import open_split

    try:
        train = open_split("train", spec, workspace.cache)
        valid = open_split("valid", spec, workspace.cache)
    except UserError as exc:
        log.debug("%s", exc)
        return Check(name=f"tokens {spec}", level="fail", detail="no token cache for this tokenizer yet",
                     fix=f"vibe-research data prepare --tokenizer {spec}")
    per = train.manifest.bytes / max(train.manifest.tokens, 1)
    return Check(name=f"tokens {spec}", level="ok",
                 detail=f"train {train.manifest.tokens:,} tokens ({per:.2f} bytes/token), valid {valid.manifest.tokens:,} tokens")


def check_sandbox(workspace: Workspace) -> tuple[Check, dict]:
    from vibe_research.sandbox.policy import load_policy
    from vibe_research.sandbox.probe import probe

    try:
        policy = load_policy(workspace.sandbox_file)
    except UserError as exc:
        return Check(name="sandbox", level="fail", detail=str(exc), fix=f"fix {workspace.sandbox_file}"), {}
    report = probe(policy)
    active = [item.name for item in report.protections if item.active]
    missing = report.missing()
    if policy.mode == "none":
        return Check(name="sandbox", level="warn", detail='sandbox.mode = "none": runs have your full access',
                     fix='set mode = "auto" in sandbox.toml'), report.model_dump()
    level: Level = "warn" if missing else "ok"
    detail = f"active: {', '.join(active) or 'none'}"
    if missing:
        detail += "; OFF: " + "; ".join(f"{item.name} ({item.detail})" for item in missing)
    return Check(name="sandbox", level=level, detail=detail), report.model_dump()


def run_checks(workspace: Workspace, settings: Settings) -> tuple[list[Check], dict]:
    """Every check, in the order a person reads them; and the sandbox protection report."""
    checks = [check_device(), check_data(workspace, settings), check_tokens(workspace, settings.data.tokenizer)]
    sandbox, report = check_sandbox(workspace)
    checks.append(sandbox)
    return checks, report
