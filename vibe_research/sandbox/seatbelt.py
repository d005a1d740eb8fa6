"""macOS: a Seatbelt (sandbox-exec) profile with the same allow-list as Landlock on Linux.

Metal/MPS needs IOKit user clients (the GPU driver) and a few Mach services (the shader
compiler); those are allowed by name, everything else is denied. In SBPL the last matching rule
wins, so the denials come after the allowances.
"""

from pathlib import Path

from vibe_research.sandbox.landlock import Grant

METAL_MACH_SERVICES = [
    "com.apple.MTLCompilerService",
    "com.apple.CARenderServer",
    "com.apple.system.opendirectoryd.libinfo",
    "com.apple.system.notification_center",
    "com.apple.logd",
    "com.apple.cvmsServ",
    "com.apple.PowerManagement.control",
]
METAL_IOKIT_CLASSES = [
    "AGXDeviceUserClient",
    "AGXSharedUserClient",
    "IOSurfaceRootUserClient",
    "IOAccelerator",
    "AppleGPUWrangler",
]
SYSTEM_READ = [
    "/System",
    "/usr",
    "/Library/Apple",
    "/private/etc",
    "/private/var/db/timezone",
    "/dev",
]


def _quote(path: Path | str) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def seatbelt_profile(
    grants: list[tuple[Path, Grant]], denied: list[Path], network: bool, posix_ipc: bool = True
) -> str:
    """The SBPL text for `sandbox-exec -p`: `grants` as on Linux, `denied` never readable;
    POSIX shared memory and semaphores (named objects that outlive a process) only if `posix_ipc`."""
    reads = [*SYSTEM_READ, *(str(path) for path, _ in grants)]
    writes = [str(path) for path, grant in grants if grant in ("write", "device")]
    lines = [
        "(version 1)",
        "(deny default)",
        "(allow process-fork process-exec)",
        "(allow signal (target same-sandbox))",
        "(allow sysctl-read)",
        *(["(allow ipc-posix-shm ipc-posix-sem)"] if posix_ipc else []),
        "(allow file-read-metadata)",
        "(allow mach-lookup "
        + " ".join(f"(global-name {_quote(name)})" for name in METAL_MACH_SERVICES)
        + ")",
        "(allow iokit-open "
        + " ".join(f"(iokit-user-client-class {_quote(name)})" for name in METAL_IOKIT_CLASSES)
        + ")",
        "(allow file-read* " + " ".join(f"(subpath {_quote(path)})" for path in reads) + ")",
        '(allow file-write* (literal "/dev/null") '
        + " ".join(f"(subpath {_quote(path)})" for path in writes)
        + ")",
    ]
    if network:
        lines.append("(allow network*)")
    lines += [f"(deny file-read* file-write* (subpath {_quote(path)}))" for path in denied]
    return "\n".join(lines) + "\n"
