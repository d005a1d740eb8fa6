"""`python -m vibe_research.sandbox.launch PLAN_JSON -- COMMAND...`: apply a LaunchPlan to this
process, then exec COMMAND, which inherits every limit. Fails closed: exit 125 with one line on
stderr when a requested protection cannot be applied.
"""

import os
import sys
from pathlib import Path

from vibe_research.sandbox import landlock
from vibe_research.sandbox.limits import apply_rlimits, drop_capabilities
from vibe_research.sandbox.namespaces import enter_network_namespace
from vibe_research.sandbox.plan import LaunchPlan
from vibe_research.sandbox.seccomp import block_persistent_ipc, block_unix_sockets

SETUP_FAILED = 125
SETUP_MARKER = "vibe-sandbox: could not apply"


def _join_cgroups(procs_files: list[str]) -> None:
    for procs in procs_files:
        Path(procs).write_text(str(os.getpid()))


def apply(plan: LaunchPlan) -> None:
    """In order: join cgroups and unshare (need privileges), then limits, capabilities, seccomp, Landlock."""
    steps = [
        ("cgroups", lambda: _join_cgroups(plan.cgroup_procs)),
        ("network namespace", enter_network_namespace if plan.network_namespace else None),
        ("rlimits", lambda: apply_rlimits(plan.rlimits)),
        ("capability drop", drop_capabilities if plan.drop_capabilities else None),
        ("seccomp", block_unix_sockets if plan.block_unix_sockets else None),
        ("seccomp ipc", block_persistent_ipc if plan.block_ipc else None),
        (
            "landlock",
            (lambda: landlock.restrict([(Path(p), g) for p, g in plan.grants], plan.allow_tcp))
            if plan.landlock
            else None,
        ),
    ]
    for name, step in steps:
        if step is None:
            continue
        try:
            step()
        except OSError as exc:
            print(f"{SETUP_MARKER} {name}: {exc}", file=sys.stderr, flush=True)
            os._exit(SETUP_FAILED)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        print(
            "usage: python -m vibe_research.sandbox.launch PLAN_JSON -- COMMAND...", file=sys.stderr
        )
        sys.exit(2)
    apply(LaunchPlan.model_validate_json(argv[0]))
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
