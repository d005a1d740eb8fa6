"""The loop's parts: notes, ledger, git, proposals and edits, judge, statistics."""
