"""The fixed measurement core: data, tokenizers, token caches, the ModelAPI, evaluation.

Evaluation (DO NOT CHANGE from experiments): the research loop never edits this package, and
every run record stores `fingerprint()` of it, so an edit to the core is visible.
"""

import hashlib
from pathlib import Path


def fingerprint() -> str:
    """sha256 (first 16 hex digits) over the sources of vibe_research.lm, in path order."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".txt"}:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
