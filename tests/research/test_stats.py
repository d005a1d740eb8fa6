"""Statistics over seeds: t intervals against published tables, Welch's and paired tests, verdicts."""

import random

import pytest

from vibe_research.research.stats import (
    Difference,
    compare,
    describe,
    describe_gain,
    paired,
    split_gain,
    summarize,
    welch,
    wilson,
)


@pytest.mark.parametrize(
    ("n", "expected"), [(2, 12.706), (3, 4.303), (4, 3.182), (6, 2.571), (11, 2.228), (31, 2.042)]
)
def test_t_intervals_match_the_table(n: int, expected: float) -> None:
    values = [1.5 + (0.01 if i % 2 else -0.01) for i in range(n)]
    summary = summarize(values)
    half = (summary.high - summary.low) / 2
    assert half / (summary.std / n**0.5) == pytest.approx(expected, abs=1e-3)


def test_welch_matches_a_textbook_example() -> None:
    # by hand: means 1.405 and 1.5003, variances 2.5e-5 and 2.33e-6 over 3 each, so
    # t = -0.0953 / sqrt(2.5e-5/3 + 2.33e-6/3) = -31.6 on Welch-Satterthwaite df = 2.37
    difference = welch("bpb", [1.40, 1.41, 1.405], [1.50, 1.502, 1.499], lower_is_better=True)
    assert difference.diff == pytest.approx(-0.095333, abs=1e-6)
    assert difference.df == pytest.approx(2.370, abs=1e-3)
    assert difference.p_value == pytest.approx(3.62e-4, rel=1e-2) and difference.verdict == "better"
    assert difference.test == "Welch t-test"


def test_a_paired_test_sees_a_gain_the_spread_between_bases_hides() -> None:
    # five bases from two machine periods, each fused: every pair gains 0.09 to 0.17, and the
    # bases' spread (1.00 to 1.15) widens a test of independent samples
    bases = [1.0013, 1.0321, 1.0331, 1.1103, 1.1460]
    fused = [0.9130, 0.9299, 0.9316, 0.9610, 0.9745]
    by_hand = sum(f - b for f, b in zip(fused, bases, strict=True)) / 5  # -0.12256
    difference = paired("bpb", fused, bases, lower_is_better=True, confidence=0.975)
    assert difference.diff == pytest.approx(by_hand) and difference.df == 4
    # t = mean / (sd / sqrt(5)) = -7.655 on 4 df: p = 0.00157 (scipy.stats.t.sf by hand)
    assert difference.p_value == pytest.approx(1.565e-3, rel=1e-2)
    assert difference.verdict == "better" and difference.test == "paired t-test"
    assert "n=5 pairs" in describe(difference)
    independent = welch("bpb", fused, bases, lower_is_better=True, confidence=0.975)
    assert (
        independent.p_value > 4 * difference.p_value
    )  # 0.0076: the bases' spread counted as noise
    assert independent.high - independent.low > 1.5 * (difference.high - difference.low)
    assert compare("bpb", fused, bases, pairs=True).bpb.test == "paired t-test"
    single = paired("bpb", [1.0], [1.1], lower_is_better=True)
    assert single.verdict == "indicative" and single.test == ""
    assert "(n=1 pair: no test, which needs at least 2 pairs)" in describe(single)
    # a ledger record from before the `paired` field is read as paired by its test's name
    stored = difference.model_dump(exclude={"paired"})
    assert "n=5 pairs" in describe(Difference.model_validate(stored))
    assert paired("bpb", [1.0, 1.5], [1.25, 1.75], lower_is_better=True).verdict == "inconclusive"
    with pytest.raises(ValueError, match="one base value per candidate value"):
        paired("bpb", [1.0, 1.1], [1.1], lower_is_better=True)


def test_wilson() -> None:
    low, high = wilson(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-3), pytest.approx(0.9433, abs=1e-3))
    assert wilson(0, 4)[0] == pytest.approx(0.0, abs=1e-12) and wilson(4, 4)[1] == 1.0


def test_summary_gives_a_t_interval_over_seeds() -> None:
    summary = summarize([1.50, 1.52, 1.49])
    assert summary.n == 3 and summary.mean == pytest.approx(1.503333, abs=1e-6)
    assert summary.std == pytest.approx(0.0152753, abs=1e-6)
    half = 4.302653 * 0.0152753 / 3**0.5
    assert (summary.low, summary.high) == (
        pytest.approx(summary.mean - half, abs=1e-6),
        pytest.approx(summary.mean + half, abs=1e-6),
    )
    single = summarize([1.5])
    assert single.low is None and single.std is None


def test_two_seeds_differing_by_noise_only_are_inconclusive() -> None:
    comparison = compare("bpb", [1.5012, 1.4979], [1.4996, 1.5021])
    assert comparison.verdict == "inconclusive"
    assert (
        "Welch t-test" in comparison.reason
        and "n=2 vs 2" in comparison.reason
        and "95% interval" in comparison.reason
    )


def test_noise_is_inconclusive_far_more_often_than_not() -> None:
    """Same distribution on both sides: a 95% interval wrongly excludes zero about 5% of the time."""
    rng = random.Random(7)
    wrong = sum(
        compare(
            "bpb",
            [rng.gauss(1.5, 0.01) for _ in range(3)],
            [rng.gauss(1.5, 0.01) for _ in range(3)],
        ).verdict
        != "inconclusive"
        for _ in range(400)
    )
    assert wrong / 400 < 0.09


def test_a_clear_improvement_is_better_and_a_regression_worse() -> None:
    assert compare("bpb", [1.40, 1.41, 1.405], [1.50, 1.502, 1.499]).verdict == "better"
    assert compare("bpb", [1.60, 1.61, 1.605], [1.50, 1.502, 1.499]).verdict == "worse"
    assert (
        compare(
            "judge", [1.6, 1.61, 1.6], [1.5, 1.51, 1.5], [7.1, 7.3, 7.2], [6.0, 6.2, 6.1]
        ).verdict
        == "better"
    )


def test_both_means_better_on_one_and_not_worse_on_the_other() -> None:
    better_bpb, same_bpb = (
        ([1.40, 1.41, 1.405], [1.50, 1.502, 1.499]),
        ([1.50, 1.501, 1.499], [1.50, 1.502, 1.499]),
    )
    noisy_judge = ([6.0, 6.5, 6.2], [6.1, 6.4, 6.2])
    worse_judge = ([4.0, 4.1, 4.2], [6.1, 6.2, 6.3])
    assert compare("both", *better_bpb, *noisy_judge).verdict == "better"
    assert compare("both", *same_bpb, *worse_judge).verdict == "worse"
    mixed = compare("both", *better_bpb, *worse_judge)
    assert mixed.verdict == "inconclusive" and "worse on the other" in mixed.reason


def test_a_missing_judge_drops_out_and_is_named() -> None:
    comparison = compare("both", [1.40, 1.41, 1.405], [1.50, 1.502, 1.499])
    assert comparison.verdict == "better" and "judge not measured" in comparison.reason
    assert compare("judge", [1.4], [1.5]).verdict == "inconclusive"


def test_no_spread_across_seeds_gives_no_verdict() -> None:
    difference = welch("judge", [6.5, 6.5, 6.5], [6.0, 6.0, 6.0], lower_is_better=False)
    assert difference.verdict == "inconclusive" and difference.low is None
    assert (
        "every seed gave the same value"
        in compare("judge", [1.5], [1.5], [6.5] * 3, [6.0] * 3).reason
    )


def test_one_run_on_a_side_is_only_indicative_and_claims_no_test() -> None:
    difference = welch("bpb", [1.40], [1.50, 1.502, 1.499], lower_is_better=True)
    assert difference.verdict == "indicative" and difference.low is None and difference.test == ""
    comparison = compare("bpb", [1.40], [1.50, 1.502, 1.499])
    assert comparison.verdict == "indicative"
    assert "n=1 vs 3: no test" in comparison.reason and "t-test" not in comparison.reason
    assert "run more seeds" in comparison.reason
    assert compare("both", [1.40, 1.39], [1.5, 1.51], [7.0], [6.0, 6.1]).verdict == "indicative"


def _curve(tokens: float, offset: float = 0.0, points: int = 40) -> list[tuple[float, float]]:
    """A loss curve falling like a real one: 6 nats at the start to about 2 at 1M tokens."""
    return [
        (t, 2.0 + 4.0 / (1 + t / 1e5) + offset)
        for t in (tokens * (i + 1) / points for i in range(points))
    ]


def test_a_gain_from_more_tokens_alone_is_split_as_tokens() -> None:
    split = split_gain([_curve(2e6)] * 3, [_curve(1e6)] * 3, delta_bpb=-0.05)
    assert split is not None and split.at_tokens == 1e6
    assert split.from_tokens == pytest.approx(-0.05, abs=2e-3)
    assert split.from_learning == pytest.approx(0.0, abs=2e-3)
    assert "came from tokens seen in the budget (2.00x" in describe_gain(split)


def test_a_gain_at_equal_tokens_is_split_as_learning() -> None:
    split = split_gain([_curve(1e6, offset=-0.1)] * 2, [_curve(1e6)] * 2, delta_bpb=-0.04)
    assert split.from_learning == pytest.approx(-0.04, abs=1e-6)
    assert split.from_tokens == pytest.approx(0.0, abs=1e-6)


def test_curves_too_short_to_read_give_no_split() -> None:
    assert split_gain([[(1e3, 5.0)]], [_curve(1e6)], -0.1) is None


def test_two_metrics_together_err_no_more_often_than_one_test() -> None:
    """Under `both` either metric could claim a difference by chance: Bonferroni keeps the
    verdict's error near 5%, where two tests at 95% would err about 10% of the time."""
    rng = random.Random(11)

    def noise(centre: float) -> list[float]:
        return [rng.gauss(centre, 0.01) for _ in range(3)]

    verdicts = [
        compare("both", noise(1.5), noise(1.5), noise(6.0), noise(6.0)).verdict for _ in range(2000)
    ]
    wrong = sum(verdict != "inconclusive" for verdict in verdicts) / len(verdicts)
    assert wrong < 0.065
    assert "97.5% interval" in compare("both", noise(1.4), noise(1.5), noise(6), noise(6)).reason
