"""sandbox.toml: what a training run may touch and use. Validated by pydantic; unknown keys rejected."""

import fnmatch
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vibe_research.lm.errors import load_toml_model

# Names that look like credentials never reach a run, whatever env_allow says.
SECRET_NAME_PATTERNS = (
    "*KEY*",
    "TOKEN*",
    "*_TOKEN",
    "*_TOKEN_*",
    "*SECRET*",
    "*PASSWORD*",
    "*PASSWD*",
    "*CREDENTIAL*",
)

DEFAULT_ENV_ALLOW = [
    "PATH",
    "LANG",
    "LC_*",
    "TZ",
    "TERM",
    "CUDA_*",
    "NVIDIA_*",
    "HIP_*",
    "ROCR_*",
    "HSA_*",
    "PYTORCH_*",
    "TORCH_*",
    "TORCHINDUCTOR_*",
    "OMP_*",
    "MKL_*",
    "KMP_*",
    "OPENBLAS_*",
    "GOTO_*",
    "BLIS_*",
    "NVPL_*",
    "DNNL_*",
    "ONEDNN_*",
    "NUMEXPR_*",
    "TIKTOKEN_CACHE_DIR",
    "VIBE_CACHE_DIR",
]

DEFAULT_DENY_READ = [
    "~/.ssh",
    "~/.aws",
    "~/.config",
    "~/.netrc",
    "~/.gnupg",
    "~/.docker",
    "~/.kube",
    "~/.git-credentials",
    "~/.pypirc",
    "~/.env",
    # relative entries are taken from the workspace root
    "notes",
    ".git",
    ".env",
    "vibe-research.toml",
    "sandbox.toml",
]


class SandboxPolicy(BaseModel):
    """The [sandbox.toml] file. Every key optional; templates/sandbox.toml documents each."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["auto", "none"] = "auto"
    grace_s: float = Field(default=20, ge=0, description="seconds past the budget before SIGTERM")
    kill_after_s: float = Field(default=5, gt=0, description="seconds after SIGTERM before SIGKILL")
    eval_timeout_s: float = Field(
        default=600, gt=0, description="wall clock of one evaluation process"
    )
    memory_gb: float | None = Field(default=None, gt=0, description="None: 75% of physical memory")
    threads: int | None = Field(default=None, ge=1, description="None: every CPU core")
    processes: int = Field(
        default=512, ge=8, description="tasks (processes and threads) a run may hold"
    )
    file_size_gb: float = Field(default=4, gt=0)
    run_dir_gb: float = Field(default=8, gt=0)
    network: bool = False
    read_paths: list[str] = Field(default_factory=list)
    # /dev/shm: Python multiprocessing and torch data loaders keep semaphores and tensors there.
    write_paths: list[str] = Field(default_factory=lambda: ["/dev/shm"])
    deny_read: list[str] = Field(default_factory=lambda: list(DEFAULT_DENY_READ))
    env_allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ENV_ALLOW))
    gpu: Literal["auto", "off"] = "auto"
    # torch.compile's cache shared by every run (.vibe/cache/compile), so runs do not recompile
    compile_cache: bool = True

    @field_validator("read_paths", "write_paths")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not Path(path).expanduser().is_absolute():
                raise ValueError(f"{path!r} is not absolute; write it as /full/path or ~/path")
        return paths

    def memory_bytes(self, physical: int) -> int:
        return int(self.memory_gb * 2**30) if self.memory_gb else int(physical * 0.75)

    def denied_paths(self, workspace: Path, home: Path) -> list[Path]:
        """deny_read resolved: `~/x` under `home`, relative entries under the workspace."""
        resolved = []
        for entry in self.deny_read:
            if entry.startswith("~"):
                resolved.append(home / entry.removeprefix("~").lstrip("/"))
            elif Path(entry).is_absolute():
                resolved.append(Path(entry))
            else:
                resolved.append(workspace / entry)
        return resolved

    def run_environment(self, environ: dict[str, str]) -> dict[str, str]:
        """The variables of `environ` that env_allow lets through, credentials always removed."""
        return {
            name: value
            for name, value in environ.items()
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.env_allow)
            and not any(
                fnmatch.fnmatchcase(name.upper(), pattern) for pattern in SECRET_NAME_PATTERNS
            )
        }


def load_policy(path: Path) -> SandboxPolicy:
    """Read sandbox.toml (missing: every default, which is the full sandbox)."""
    return load_toml_model(path, SandboxPolicy)
