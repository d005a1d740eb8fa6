"""Numbers as the pages write them: a dash for nothing, intervals as people write them."""

import math

from vibe_research.ui.source import Difference, Summary

NOTHING = "–"


def num(value: float | int | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOTHING
    return f"{value:,.{digits}f}"


def plus_minus(summary: Summary | None, digits: int) -> str:
    """mean ± half the interval; the mean alone for one seed."""
    if summary is None:
        return NOTHING
    if summary.low is None or summary.high is None:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {(summary.high - summary.low) / 2:.{digits}f}"


def interval(low: float | None, high: float | None, digits: int, signed: bool = False) -> str:
    if low is None or high is None:
        return NOTHING
    sign = "+" if signed else ""
    return f"[{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def difference(diff: Difference) -> str:
    """`+0.0215 [+0.0108, +0.0322]`: the candidate minus the reference, with its interval."""
    digits = 4 if diff.metric == "bpb" else 2
    return f"{diff.diff:+.{digits}f} {interval(diff.low, diff.high, digits, signed=True)}"


def p_value(p: float | None) -> str:
    if p is None:
        return NOTHING
    return "< 0.0001" if p < 1e-4 else f"{p:.3g}"
