"""Statistics over seeds: mean, spread, Student t intervals, Welch's test, and the verdict.

Five-minute trainings are noisy (the seed's lesson from fifty transformers): a claim needs
several seeds and a named test. Everything here is pure; t quantiles are computed from the
regularised incomplete beta function so no SciPy is needed.
"""

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

Verdict = Literal["better", "worse", "inconclusive"]
Objective = Literal["bpb", "judge", "both"]


class Summary(BaseModel):
    """Mean over seeds with a Student t interval; low/high are None when n < 2."""

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None
    confidence: float


class Difference(BaseModel):
    """candidate mean minus best mean, with a Welch interval and two-sided p-value."""

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


class Comparison(BaseModel):
    """The verdict of a candidate against the current best, with every number behind it."""

    objective: Objective
    verdict: Verdict
    reason: str
    bpb: Difference | None = None
    judge: Difference | None = None


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (df may be fractional, as in Welch)."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value with t_cdf(t, df) == p, by bisection (the CDF is monotone)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile needs 0 < p < 1, got {p}")
    low, high = -1.0, 1.0
    while t_cdf(low, df) > p:
        low *= 2.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return 0.5 * (low + high)


def _variance(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample standard deviation and the t interval of the mean."""
    if not values:
        raise ValueError("summarize needs at least one value")
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Summary(n=n, mean=mean, std=None, low=None, high=None, confidence=confidence)
    std = math.sqrt(_variance(values))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    return Summary(
        n=n, mean=mean, std=std, low=mean - half, high=mean + half, confidence=confidence
    )


def welch(
    metric: str,
    candidate: Sequence[float],
    best: Sequence[float],
    lower_is_better: bool,
    confidence: float = 0.95,
) -> Difference:
    """Welch's unequal-variance t-test of mean(candidate) - mean(best).

    A side measured once has no variance of its own; it borrows the other side's (equal
    variance assumed for that side only) so a single rerun can still be compared. With one
    value on both sides there is no interval and the verdict is inconclusive.
    """
    if not candidate or not best:
        raise ValueError(f"welch on {metric} needs values on both sides")
    n_c, n_b = len(candidate), len(best)
    diff = sum(candidate) / n_c - sum(best) / n_b
    if n_c < 2 and n_b < 2:
        return Difference(
            metric=metric,
            diff=diff,
            low=None,
            high=None,
            df=None,
            p_value=None,
            n_candidate=n_c,
            n_best=n_b,
            confidence=confidence,
            verdict="inconclusive",
        )
    var_c = _variance(candidate) if n_c >= 2 else _variance(best)
    var_b = _variance(best) if n_b >= 2 else _variance(candidate)
    a, b = var_c / n_c, var_b / n_b
    se = math.sqrt(a + b)
    if se == 0.0:
        # every seed gave the same value: there is no noise to measure a difference against, and a
        # judge that scores identical samples identically says nothing about the seeds
        return Difference(
            metric=metric,
            diff=diff,
            low=None,
            high=None,
            df=None,
            p_value=None,
            n_candidate=n_c,
            n_best=n_b,
            confidence=confidence,
            verdict="inconclusive",
        )
    if n_c < 2 or n_b < 2:
        # one variance estimate serves both sides: its degrees of freedom are all there are
        df = float(max(n_c, n_b) - 1)
    else:
        df = (a + b) ** 2 / (a * a / (n_c - 1) + b * b / (n_b - 1))
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    p_value = 2.0 * (1.0 - t_cdf(abs(diff) / se, df))
    return Difference(
        metric=metric,
        diff=diff,
        low=diff - half,
        high=diff + half,
        df=df,
        p_value=p_value,
        n_candidate=n_c,
        n_best=n_b,
        confidence=confidence,
        verdict=_direction(diff - half, diff + half, lower_is_better),
    )


def _direction(low: float, high: float, lower_is_better: bool) -> Verdict:
    """Better or worse only when the whole interval lies on one side of zero."""
    if high < 0:
        return "better" if lower_is_better else "worse"
    if low > 0:
        return "worse" if lower_is_better else "better"
    return "inconclusive"


def _no_interval(difference: Difference) -> str:
    one_each = difference.n_candidate < 2 and difference.n_best < 2
    return "one seed on each side" if one_each else "every seed gave the same value"


def p_text(p_value: float | None) -> str:
    if p_value is None:
        return "p n/a"
    return "p<0.0001" if p_value < 1e-4 else f"p={p_value:.3g}"


def describe(difference: Difference) -> str:
    """One phrase naming the difference, its interval, the test and n (for verdicts and notes)."""
    level = f"{difference.confidence:.0%}"
    sizes = f"n={difference.n_candidate} vs {difference.n_best}"
    if difference.low is None or difference.high is None:
        return f"{difference.metric} {difference.diff:+.4f} (no interval: {_no_interval(difference)}, {sizes})"
    return (
        f"{difference.metric} {difference.diff:+.4f}, {level} interval [{difference.low:+.4f}, {difference.high:+.4f}] "
        f"(Welch t-test, {sizes}, {p_text(difference.p_value)})"
    )


def combine(objective: Objective, bpb: Difference | None, judge: Difference | None) -> Comparison:
    """The overall verdict. `both`: better on one metric and not worse on the other.

    A metric that was not measured (no judge scores, say) drops out and the reason says so.
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
    if "better" in verdicts and "worse" not in verdicts:
        verdict: Verdict = "better"
    elif "worse" in verdicts and "better" not in verdicts:
        verdict = "worse"
    else:
        verdict = "inconclusive"
    detail = "; ".join(describe(d) for d in present)
    note = f" ({' and '.join(missing)} not measured)" if missing else ""
    mixed = " (better on one metric, worse on the other)" if verdicts >= {"better", "worse"} else ""
    return Comparison(
        objective=objective,
        verdict=verdict,
        bpb=bpb,
        judge=judge,
        reason=f"{verdict}{mixed}: {detail}{note}",
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


def normal_quantile(p: float) -> float:
    """The standard normal z with P(Z <= z) == p, by bisection on erf."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"normal_quantile needs 0 < p < 1, got {p}")
    low, high = -40.0, 40.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if 0.5 * (1.0 + math.erf(middle / math.sqrt(2.0))) < p:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; `successes` may count ties as halves."""
    if n <= 0:
        raise ValueError("wilson needs n >= 1")
    z = normal_quantile(0.5 + confidence / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
