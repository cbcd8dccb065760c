"""Indices' arithmetic with no budget: scoring a respondent, the split of epsilon, the noise
quantile the intervals rest on (against the distributions summed by hand), and intervals that
say nothing more than the noise allows."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from feedback.stats import means
from feedback.stats.shares import Interval
from feedback.surveys import FIRST_VERSION, load_survey


def test_items_score_0_to_100_and_reversed_items_turn_round() -> None:
    assert [means.item_points(v) for v in (1, 2, 3, 4, 5)] == [0, 25, 50, 75, 100]
    assert [means.item_points(v, reverse=True) for v in (1, 5)] == [100, 0]
    for bad in (0, 6, "5"):
        with pytest.raises(ValueError, match="1 to 5"):
            means.item_points(bad)  # type: ignore[arg-type]


def test_a_contribution_is_the_mean_of_answered_items_centred_and_bounded() -> None:
    assert means.contribution([100, 75, 75]) == 83 - 50  # 83.3 rounds to 83
    assert means.contribution([100]) == means.BOUND
    assert means.contribution([0, 0]) == -means.BOUND
    assert means.contribution([50, 75]) == 63 - 50  # halves round up
    assert means.contribution([]) == 0  # answered none: at the middle, still counted


def _at_least_by_hand(j: int, p: float) -> float:
    norm = (1 - p) / (1 + p)
    return sum(norm * p ** abs(k) for k in range(j, 4000))


def test_the_noise_quantile_is_that_of_the_two_distributions() -> None:
    for j in (-3, 0, 1, 5):
        assert means._at_least(j, 0.8) == pytest.approx(_at_least_by_hand(j, 0.8), abs=1e-12)
    sum_scale, count_scale, theta = 6.0, 1.5, 2.5
    p, q = math.exp(-1 / sum_scale), math.exp(-1 / count_scale)

    def pmf(k: int, a: float) -> float:
        return (1 - a) / (1 + a) * a ** abs(k)

    t = means.quantile(theta, sum_scale, count_scale, 0.05)
    beyond = sum(
        pmf(s, p) * pmf(n, q)
        for s in range(-400, 401)
        for n in range(-80, 81)
        if abs(s - theta * n) > t
    )
    assert beyond <= 0.05
    just_below = sum(
        pmf(s, p) * pmf(n, q)
        for s in range(-400, 401)
        for n in range(-80, 81)
        if abs(s - theta * n) > t - 0.01
    )
    assert just_below > 0.05  # the smallest such t, to a hundredth


def test_the_split_is_no_worse_than_any_other_and_spends_the_epsilon() -> None:
    plan = means.split(1.0, indices=2, expected_n=60)
    assert plan.sums + plan.count == 1  # exactly
    assert plan.sum_scale == pytest.approx(100 / float(plan.sums))
    chosen = means.planned_half_width(plan, 60)
    for count in ("0.05", "0.1", "0.5", "0.7"):
        other = means.Split(sums=1 - Decimal(count), count=Decimal(count), indices=2)
        assert chosen <= means.planned_half_width(other, 60)
    # About +/-8 points at 60 respondents and +/-2.5 at 200 (PRIVACY.md).
    assert 7 < chosen <= 8.1
    assert means.planned_half_width(means.split(1.0, indices=2, expected_n=200), 200) < 2.5
    with pytest.raises(ValueError, match="too small to split"):
        means.split(Decimal("0.000001"), indices=2, expected_n=60)
    with pytest.raises(ValueError, match="positive"):
        means.split(0, indices=2, expected_n=60)


def test_an_interval_holds_the_estimate_and_widens_with_the_noise() -> None:
    plan = means.split(1.0, indices=2, expected_n=60)
    scales = {"sum_scale": plan.sum_scale, "count_scale": plan.count_scale}
    estimate = means.estimate(900, 60)
    assert estimate == 65
    narrow = means.interval(900, 60, **scales)
    assert narrow.low < 65 < narrow.high
    assert 6 < (narrow.high - narrow.low) / 2 < 8.5
    wide = means.interval(90, 6, **scales)
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)
    # A noisy count at or below zero says nothing about the mean.
    assert means.estimate(50, 0) is None
    assert means.interval(50, 0, **scales) == Interval(0.0, 100.0)
    # Noise can push a sum past what the count allows: the estimate stays on the scale.
    assert means.estimate(5000, 60) == 100


def test_a_respondents_contributions_come_from_the_tagged_items_they_answered() -> None:
    survey = load_survey(FIRST_VERSION)
    answers = {
        "believed": 5,  # 100
        "respected": 4,  # 75
        "needs_asked": "prefer_not",  # leaves the mean
        "recommend": 1,  # no index: ignored
        "safe_now": 2,  # 25; the other recovery items skipped
        "gender": "woman",
    }
    assert means.contributions(survey, answers) == {"rights": 88 - 50, "recovery": 25 - 50}
    assert means.contributions(survey, {}) == {"rights": 0, "recovery": 0}
    assert means.contributions(survey, {"believed": True}) == {"rights": 0, "recovery": 0}
