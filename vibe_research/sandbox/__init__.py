"""Running untrusted code inside limits the OS enforces (Landlock, rlimits, namespaces, Seatbelt).

`probe()` says which protections this machine enforces; doctor shows it, every run record keeps it.
"""

from vibe_research.sandbox.probe import ProtectionReport, probe

__all__ = ["ProtectionReport", "probe"]
