"""Running untrusted code inside limits the OS enforces (Landlock, rlimits, namespaces, Seatbelt)."""
