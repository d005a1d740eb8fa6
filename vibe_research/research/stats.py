"""Statistics over seeds: mean, spread, Student t intervals, Welch's and paired tests, verdicts.

Five-minute trainings are noisy (the seed's lesson from fifty transformers): a claim needs
several seeds and a named test. A verdict needs at least two runs on each side; with fewer the
difference is only "indicative" and no test is claimed. Distributions and tests come from
scipy.stats.
"""

import math
from collections.abc import Sequence
from statistics import mean, stdev
from typing import Literal

from pydantic import BaseModel, model_validator
from scipy import stats as scipy_stats

Verdict = Literal["better", "worse", "inconclusive", "indicative"]
Objective = Literal["bpb", "judge", "both"]
WELCH = "Welch t-test"
PAIRED = "paired t-test"
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
    paired: bool = False  # one candidate value per base value (n_candidate pairs)

    @model_validator(mode="after")
    def _paired_test_is_paired(self) -> "Difference":
        # ledger records written before `paired` existed say so only by their test's name
        self.paired = self.paired or self.test == PAIRED
        return self


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


def paired(
    metric: str,
    candidate: Sequence[float],
    base: Sequence[float],
    lower_is_better: bool,
    confidence: float = 0.95,
) -> Difference:
    """Paired t-test of mean(candidate[i] - base[i]) (scipy.stats.ttest_rel), for candidate runs
    built each on one run of the other side (a fusion of each base seed): a pair shares its base's
    luck and the machine period it trained in, so only the difference the change made is tested."""
    if not candidate or len(candidate) != len(base):
        raise ValueError(f"paired test on {metric} needs one base value per candidate value")
    n = len(candidate)
    differences = [c - b for c, b in zip(candidate, base, strict=True)]
    untested = {
        "metric": metric, "diff": mean(differences), "low": None, "high": None, "df": None,
        "p_value": None, "n_candidate": n, "n_best": n, "confidence": confidence, "test": "",
        "paired": True,
    }  # fmt: skip
    if n < MIN_RUNS:
        return Difference(**untested, verdict="indicative")
    if stdev(differences) == 0:
        return Difference(**untested, verdict="inconclusive")
    result = scipy_stats.ttest_rel(candidate, base)
    interval = result.confidence_interval(confidence_level=confidence)
    low, high = float(interval.low), float(interval.high)
    return Difference(
        **untested
        | {"low": low, "high": high, "df": float(result.df), "p_value": float(result.pvalue)}
        | {"test": PAIRED, "verdict": _direction(low, high, lower_is_better)},
    )


def _direction(low: float, high: float, lower_is_better: bool) -> Verdict:
    """Better or worse only when the whole interval lies on one side of zero."""
    if high < 0:
        return "better" if lower_is_better else "worse"
    if low > 0:
        return "worse" if lower_is_better else "better"
    return "inconclusive"


def percent(level: float) -> str:
    """0.95 -> "95%", 0.975 -> "97.5%"."""
    return f"{level * 100:.1f}".rstrip("0").rstrip(".") + "%"


def p_text(p_value: float | None) -> str:
    if p_value is None:
        return "p n/a"
    return "p<0.0001" if p_value < 1e-4 else f"p={p_value:.3g}"


def sizes(difference: Difference) -> str:
    """How many values each side had: `n=5 vs 18`, or `n=5 pairs` for a paired test."""
    if difference.paired:
        return f"n={difference.n_candidate} pair{'s' if difference.n_candidate != 1 else ''}"
    return f"n={difference.n_candidate} vs {difference.n_best}"


def describe(difference: Difference) -> str:
    """One phrase naming the difference, its interval, the test and n (for verdicts and notes)."""
    counted = sizes(difference)
    if difference.verdict == "indicative":
        return (
            f"{difference.metric} {difference.diff:+.4f} ({counted}: no test, which needs at least "
            f"{MIN_RUNS} {'pairs' if difference.paired else 'runs a side'})"
        )
    if difference.low is None or difference.high is None:
        return f"{difference.metric} {difference.diff:+.4f} (no interval: every seed gave the same value, {counted})"
    level = percent(difference.confidence)
    return (
        f"{difference.metric} {difference.diff:+.4f}, {level} interval [{difference.low:+.4f}, {difference.high:+.4f}] "
        f"({difference.test}, {counted}, {p_text(difference.p_value)})"
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
    if len(present) == 2 and all(d.test for d in present):
        detail += f" (each test at {percent(present[0].confidence)}: Bonferroni for two metrics)"
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
    pairs: bool = False,
) -> Comparison:
    """Verdict of a candidate's seeds against the best's: bpb lower is better, judge higher. With
    `pairs`, value i of each side belongs together (see `paired`) and the test is paired.

    Under `both` two tests decide, and either could claim a difference by chance: each runs at
    1 - (1 - confidence) / 2 (Bonferroni), so the verdict as a whole errs no more often than one
    test at `confidence` would.
    """
    tested = [bool(candidate_bpb and best_bpb), bool(candidate_judge and best_judge)]
    level = confidence
    if objective == "both" and all(tested):
        level = 1 - (1 - confidence) / 2
    test = paired if pairs else welch
    bpb = (
        test("bpb", candidate_bpb, best_bpb, lower_is_better=True, confidence=level)
        if tested[0]
        else None
    )
    judge = (
        test("judge", candidate_judge, best_judge, lower_is_better=False, confidence=level)
        if tested[1]
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


class GainSplit(BaseModel):
    """Where a bpb difference between two trainings came from, under one time budget: more tokens
    seen in the budget, or lower loss at an equal number of tokens (more learning per token)."""

    delta_bpb: float  # candidate minus reference, the measured difference being split
    from_tokens: float  # bpb: the part due to tokens seen (negative: the candidate saw more)
    from_learning: float  # bpb: the part due to lower loss at equal tokens
    tokens_candidate: float  # median tokens seen in the budget
    tokens_reference: float
    at_tokens: float  # the equal-token point the learning part is read at
    how: str = (
        "training-loss curves of both sides, read at the tokens the shorter side reached: the "
        "loss gap there is the learning part, the rest of the gap between their final losses is "
        "the tokens part; both shares are applied to the measured validation difference. Train "
        "loss stands in for validation loss, and a run with a wall-clock schedule is still at a "
        "higher learning rate at the other's end point, so the tokens part is an estimate."
    )


Curve = Sequence[tuple[float, float]]  # (tokens seen, training loss in nats per token)
# the loss at t is the mean of the losses logged over the last 10% of tokens before t: one batch
# is noisy, and a trailing window reads every point (a run's end included) the same way
WINDOW = 0.1


def loss_at(curve: Curve, tokens: float) -> float | None:
    """The smoothed training loss of `curve` at `tokens` seen, or None outside the curve."""
    near = [loss for t, loss in curve if (1 - WINDOW) * tokens <= t <= tokens]
    if near:
        return mean(near)
    before = [(t, loss) for t, loss in curve if t <= tokens]
    after = [(t, loss) for t, loss in curve if t >= tokens]
    if not before or not after:
        return None
    (t0, l0), (t1, l1) = before[-1], after[0]
    return l0 if t1 == t0 else l0 + (l1 - l0) * (tokens - t0) / (t1 - t0)


def split_gain(
    candidate: list[Curve], reference: list[Curve], delta_bpb: float
) -> GainSplit | None:
    """Split `delta_bpb` (candidate minus reference) into a tokens part and a learning part, from
    the training-loss curves of each side's runs (median curve values over runs); None when the
    curves cannot say (too short, or no gap between the final losses)."""
    if not candidate or not reference or any(len(c) < 4 for c in [*candidate, *reference]):
        return None
    ends_c = [c[-1][0] for c in candidate]
    ends_r = [c[-1][0] for c in reference]
    t_c, t_r = sorted(ends_c)[len(ends_c) // 2], sorted(ends_r)[len(ends_r) // 2]
    at = min(t_c, t_r)

    def side(curves: list[Curve], tokens: float) -> float | None:
        values = [v for c in curves if (v := loss_at(c, min(tokens, c[-1][0]))) is not None]
        return sorted(values)[len(values) // 2] if values else None

    final_c, final_r = side(candidate, t_c), side(reference, t_r)
    equal_c, equal_r = side(candidate, at), side(reference, at)
    if None in (final_c, final_r, equal_c, equal_r):
        return None
    total = final_c - final_r
    if abs(total) < 1e-9:
        return None
    learning_share = (equal_c - equal_r) / total
    return GainSplit(
        delta_bpb=delta_bpb,
        from_tokens=delta_bpb * (1 - learning_share),
        from_learning=delta_bpb * learning_share,
        tokens_candidate=t_c,
        tokens_reference=t_r,
        at_tokens=at,
    )


def describe_gain(split: GainSplit) -> str:
    """One sentence for the page, the menu and the prompt."""
    more = split.tokens_candidate / max(split.tokens_reference, 1.0)
    return (
        f"of bpb {split.delta_bpb:+.4f}, {split.from_tokens:+.4f} came from tokens seen in the "
        f"budget ({more:.2f}x the reference's {split.tokens_reference / 1e6:.2f}M) and "
        f"{split.from_learning:+.4f} from lower loss at equal tokens "
        f"(read at {split.at_tokens / 1e6:.2f}M)"
    )
