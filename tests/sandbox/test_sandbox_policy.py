"""sandbox.toml validation, the environment filter, the grant invariants, the probe and the
macOS profile (generated and checked here; it can only run on a Mac)."""

import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from vibe_research.lm.errors import UserError
from vibe_research.sandbox.cgroups import create_run_cgroups, sweep_stale
from vibe_research.sandbox.command import fresh_folder
from vibe_research.sandbox.launch import SETUP_FAILED, SETUP_MARKER
from vibe_research.sandbox.plan import LaunchPlan, RunPaths, file_grants, safe_grants
from vibe_research.sandbox.policy import SandboxPolicy, load_policy
from vibe_research.sandbox.probe import probe
from vibe_research.sandbox.seatbelt import seatbelt_profile


def test_missing_file_and_template_both_mean_the_defaults(tmp_path: Path) -> None:
    template = Path(str(resources.files("vibe_research") / "templates" / "sandbox.toml"))
    assert load_policy(tmp_path / "absent.toml") == SandboxPolicy() == load_policy(template)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("memroy_gb = 4\n", "memroy_gb: Extra inputs are not permitted"),
        ("processes = 2\n", "processes: Input should be greater than or equal to 8"),
        ('mode = "off"\n', "mode: Input should be 'auto' or 'none'"),
        ('read_paths = ["data"]\n', "not absolute"),
        ("network = [\n", "malformed TOML"),
    ],
)
def test_bad_values_are_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sandbox.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as caught:
        load_policy(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_credentials_never_pass_even_when_allowed() -> None:
    policy = SandboxPolicy(env_allow=["*"])
    environ = {
        "OPENAI_API_KEY": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "HF_TOKEN": "x",
        "DB_PASSWORD": "x",
        "TIKTOKEN_CACHE_DIR": "/c",
        "PATH": "/usr/bin",
    }
    assert policy.run_environment(environ) == {"TIKTOKEN_CACHE_DIR": "/c", "PATH": "/usr/bin"}
    assert SandboxPolicy().run_environment({"EDITOR": "vi", "LC_ALL": "C"}) == {"LC_ALL": "C"}


def test_grants_that_would_expose_a_denied_path_are_dropped(tmp_path: Path) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    denied = SandboxPolicy().denied_paths(workspace, home)
    grants = [
        (home, "read"),
        (workspace, "read"),
        (workspace / "notes" / "x.md", "read"),
        (workspace / "experiments", "read"),
        (home / ".pyenv", "exec"),
    ]
    assert safe_grants(grants, denied) == [
        (workspace / "experiments", "read"),
        (home / ".pyenv", "exec"),
    ]


def test_training_grants_keep_the_valid_cache_and_workspace_closed(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    paths = RunPaths(
        workspace=workspace,
        run_dir=workspace / ".vibe" / "runs" / "r",
        tmp_dir=workspace / ".vibe" / "runs" / "r" / "tmp",
        reads=[workspace / ".vibe" / "cache" / "tokens"],
        denies=[workspace / ".vibe" / "cache" / "tokens" / "valid"],
    )
    granted = {path: grant for path, grant in file_grants(SandboxPolicy(), paths, gpu=False)}
    assert granted[paths.run_dir] == "write" and granted[workspace / "experiments"] == "read"
    assert workspace / ".vibe" / "cache" / "tokens" not in granted  # it holds the valid split
    assert workspace not in granted and Path.home() not in granted


def test_probe_reports_every_protection_and_none_mode_loudly() -> None:
    report = probe()
    assert {item.name for item in report.protections} >= {"rlimits", "process-group"}
    assert type(report).model_validate_json(report.model_dump_json()) == report
    off = probe(SandboxPolicy(mode="none"))
    assert off.warnings() == [
        'sandbox: sandbox is OFF: sandbox.mode = "none": the run has your full access'
    ]


def test_seatbelt_profile_allows_the_run_and_metal_and_denies_secrets() -> None:
    grants = [
        (Path("/usr/lib"), "exec"),
        (Path('/runs/r "1"'), "write"),
        (Path("/dev/null"), "device"),
    ]
    profile = seatbelt_profile(grants, [Path("/Users/me/.ssh")], network=False)
    lines = profile.splitlines()
    assert lines[:2] == ["(version 1)", "(deny default)"]
    assert '(subpath "/runs/r \\"1\\"")' in next(
        line for line in lines if line.startswith("(allow file-write*")
    )
    assert (
        lines[-1] == '(deny file-read* file-write* (subpath "/Users/me/.ssh"))'
    )  # after the allows: it wins
    assert "com.apple.MTLCompilerService" in profile and "AGXDeviceUserClient" in profile
    assert "network" not in profile
    assert "(allow network*)" in seatbelt_profile(grants, [], network=True)


def test_launcher_fails_closed_when_a_protection_cannot_be_applied() -> None:
    plan = LaunchPlan(
        grants=[],
        landlock=False,
        allow_tcp=False,
        network_namespace=False,
        block_unix_sockets=False,
        rlimits={},
        cgroup_procs=["/nonexistent/cgroup.procs"],
        drop_capabilities=False,
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vibe_research.sandbox.launch",
            plan.model_dump_json(),
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == SETUP_FAILED and done.stderr.startswith(f"{SETUP_MARKER} cgroups")


def test_a_link_cannot_smuggle_a_denied_folder_into_the_grants(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tmp").symlink_to(home / ".ssh")
    denied = SandboxPolicy().denied_paths(tmp_path / "ws", home)
    assert safe_grants(
        [(tmp_path / "run" / "tmp", "write"), (tmp_path / "run", "write")], denied
    ) == [(tmp_path / "run", "write")]


def test_each_phase_gets_a_real_private_temp_not_a_link_a_run_left(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("k")
    tmp = tmp_path / "run" / "tmp"
    tmp.parent.mkdir()
    tmp.symlink_to(secret)
    fresh_folder(tmp)
    assert tmp.is_dir() and not tmp.is_symlink() and not any(tmp.iterdir())
    assert (secret / "key").read_text() == "k"


def test_stale_run_cgroups_are_swept_and_live_ones_kept() -> None:
    groups = create_run_cgroups(f"sweep-test-{os.getpid()}", None, 64)
    if not groups.folders:
        pytest.skip("no writable cgroup here")
    parent, folder = groups.folders[0].parent, groups.folders[0]
    an_hour_ago = time.time() - 3600
    os.utime(
        folder, (an_hour_ago, an_hour_ago)
    )  # only ours is old: others' live cgroups stay out of it
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (folder / "cgroup.procs").write_text(str(sleeper.pid))
        sweep_stale(parent)
        assert folder.is_dir()  # busy: rmdir refused
    finally:
        sleeper.kill()
        sleeper.wait()
    sweep_stale(parent)
    assert not folder.exists()
    groups.folders.pop(0)
    groups.remove()
