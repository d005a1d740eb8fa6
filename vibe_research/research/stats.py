"""Statistics over seeds: mean, spread, Student t intervals, Welch's test, and the verdict.

Five-minute trainings are noisy (the seed's lesson from fifty transformers): a claim needs
several seeds and a named test. A verdict needs at least two runs on each side; with fewer the
difference is only "indicative" and no test is claimed. Distributions and tests come from
scipy.stats.
"""

import math
from collections.abc import Sequence
from statistics import mean, stdev
from typing import Literal

from pydantic import BaseModel
from scipy import stats as scipy_stats

Verdict = Literal["better", "worse", "inconclusive", "indicative"]
Objective = Literal["bpb", "judge", "both"]
WELCH = "Welch t-test"
MIN_RUNS = 2  # on each side, for any test at all


class Summary(BaseModel):
    """Mean over seeds with a Student t interval; low/high are None when n < 2."""

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None
    confidence: float


class Difference(BaseModel):
    """candidate mean minus best mean, with the test that was run on it (if any)."""

    metric: str
    diff: float
    low: float | None
    high: float | None
    df: float | None
    p_value: float | None
    n_candidate: int
    n_best: int
    confidence: float
    verdict: Verdict  # for this metric alone, direction-aware
    test: str = WELCH  # "" when no test could be run


class Comparison(BaseModel):
    """The verdict of a candidate against the current best, with every number behind it."""

    objective: Objective
    verdict: Verdict
    reason: str
    bpb: Difference | None = None
    judge: Difference | None = None


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample standard deviation and the t interval of the mean."""
    if not values:
        raise ValueError("summarize needs at least one value")
    n, centre = len(values), mean(values)
    if n < 2:
        return Summary(n=n, mean=centre, std=None, low=None, high=None, confidence=confidence)
    spread = stdev(values)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * spread / math.sqrt(n)
    return Summary(
        n=n, mean=centre, std=spread, low=centre - half, high=centre + half, confidence=confidence
    )


def welch(
    metric: str,
    candidate: Sequence[float],
    best: Sequence[float],
    lower_is_better: bool,
    confidence: float = 0.95,
) -> Difference:
    """Welch's unequal-variance t-test of mean(candidate) - mean(best) (scipy.stats.ttest_ind).

    With fewer than two values on a side there is no variance to test against: the difference
    is reported with no test, no interval and the verdict "indicative". With no spread on
    either side (identical values) nothing can be said either: inconclusive.
    """
    if not candidate or not best:
        raise ValueError(f"welch on {metric} needs values on both sides")
    n_c, n_b = len(candidate), len(best)
    diff = mean(candidate) - mean(best)
    untested = {
        "metric": metric, "diff": diff, "low": None, "high": None, "df": None, "p_value": None,
        "n_candidate": n_c, "n_best": n_b, "confidence": confidence, "test": "",
    }  # fmt: skip
    if n_c < MIN_RUNS or n_b < MIN_RUNS:
        return Difference(**untested, verdict="indicative")
    if stdev(candidate) == 0 and stdev(best) == 0:
        # every seed gave the same value: there is no noise to measure a difference against, and
        # a judge that scores identical samples identically says nothing about the seeds
        return Difference(**untested, verdict="inconclusive")
    result = scipy_stats.ttest_ind(candidate, best, equal_var=False)
    interval = result.confidence_interval(confidence_level=confidence)
    low, high = float(interval.low), float(interval.high)
    return Difference(
        metric=metric,
        diff=diff,
        low=low,
        high=high,
        df=float(result.df),
        p_value=float(result.pvalue),
        n_candidate=n_c,
        n_best=n_b,
        confidence=confidence,
        verdict=_direction(low, high, lower_is_better),
    )


def _direction(low: float, high: float, lower_is_better: bool) -> Verdict:
    """Better or worse only when the whole interval lies on one side of zero."""
    if high < 0:
        return "better" if lower_is_better else "worse"
    if low > 0:
        return "worse" if lower_is_better else "better"
    return "inconclusive"


def p_text(p_value: float | None) -> str:
    if p_value is None:
        return "p n/a"
    return "p<0.0001" if p_value < 1e-4 else f"p={p_value:.3g}"


def describe(difference: Difference) -> str:
    """One phrase naming the difference, its interval, the test and n (for verdicts and notes)."""
    sizes = f"n={difference.n_candidate} vs {difference.n_best}"
    if difference.verdict == "indicative":
        return (
            f"{difference.metric} {difference.diff:+.4f} ({sizes}: no test, which needs at least "
            f"{MIN_RUNS} runs a side)"
        )
    if difference.low is None or difference.high is None:
        return f"{difference.metric} {difference.diff:+.4f} (no interval: every seed gave the same value, {sizes})"
    level = f"{difference.confidence:.0%}"
    return (
        f"{difference.metric} {difference.diff:+.4f}, {level} interval [{difference.low:+.4f}, {difference.high:+.4f}] "
        f"({difference.test}, {sizes}, {p_text(difference.p_value)})"
    )


def combine(objective: Objective, bpb: Difference | None, judge: Difference | None) -> Comparison:
    """The overall verdict. `both`: better on one metric and not worse on the other.

    A metric that was not measured (no judge scores, say) drops out and the reason says so; a
    metric with too few runs for a test makes the whole verdict indicative.
    """
    parts = {"bpb": bpb, "judge": judge}
    wanted = ["bpb", "judge"] if objective == "both" else [objective]
    present = [parts[name] for name in wanted if parts[name] is not None]
    missing = [name for name in wanted if parts[name] is None]
    if not present:
        return Comparison(
            objective=objective,
            verdict="inconclusive",
            bpb=bpb,
            judge=judge,
            reason=f"inconclusive: no {' or '.join(missing)} measurements to compare",
        )
    verdicts = {d.verdict for d in present}
    if "indicative" in verdicts:
        verdict: Verdict = "indicative"
    elif "better" in verdicts and "worse" not in verdicts:
        verdict = "better"
    elif "worse" in verdicts and "better" not in verdicts:
        verdict = "worse"
    else:
        verdict = "inconclusive"
    detail = "; ".join(describe(d) for d in present)
    note = f" ({' and '.join(missing)} not measured)" if missing else ""
    mixed = " (better on one metric, worse on the other)" if verdicts >= {"better", "worse"} else ""
    rerun = "; run more seeds to decide" if verdict == "indicative" else ""
    return Comparison(
        objective=objective,
        verdict=verdict,
        bpb=bpb,
        judge=judge,
        reason=f"{verdict}{mixed}: {detail}{note}{rerun}",
    )


def compare(
    objective: Objective,
    candidate_bpb: Sequence[float],
    best_bpb: Sequence[float],
    candidate_judge: Sequence[float] = (),
    best_judge: Sequence[float] = (),
    confidence: float = 0.95,
) -> Comparison:
    """Verdict of a candidate's seeds against the best's: bpb lower is better, judge higher."""
    bpb = (
        welch("bpb", candidate_bpb, best_bpb, lower_is_better=True, confidence=confidence)
        if candidate_bpb and best_bpb
        else None
    )
    judge = (
        welch("judge", candidate_judge, best_judge, lower_is_better=False, confidence=confidence)
        if candidate_judge and best_judge
        else None
    )
    return combine(objective, bpb, judge)


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; `successes` may count ties as halves."""
    if n <= 0:
        raise ValueError("wilson needs n >= 1")
    z = float(scipy_stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
