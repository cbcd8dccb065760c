"""Indices' arithmetic with no budget: scoring a respondent, the split of epsilon, the tails the
intervals rest on (against sums done by hand), intervals that cover sampling and noise, and
the audit's example of respondents who skipped an index."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from feedback.stats import means
from feedback.stats.shares import laplace_sum_sf, normal_laplace_sf
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
    assert means.contribution([]) is None  # answered none: in none of the index's cells


def _normal_laplace_by_hand(x: float, sd: float, b: float) -> float:
    """P(N(0, sd^2) + L > x) by summing the Laplace's density against the normal's tail."""
    step, total = b / 400, 0.0
    for i in range(-400 * 40, 400 * 40):
        y = (i + 0.5) * step
        total += math.exp(-abs(y) / b) / (2 * b) * 0.5 * math.erfc((x - y) / (sd * math.sqrt(2)))
    return total * step


def test_the_tails_the_intervals_rest_on_are_those_summed_by_hand() -> None:
    for x, sd, b in ((0.0, 3.0, 2.0), (10.0, 3.0, 2.0), (40.0, 5.0, 20.0), (-7.0, 1.0, 4.0)):
        assert normal_laplace_sf(x, sd, b) == pytest.approx(
            _normal_laplace_by_hand(x, sd, b), abs=1e-6
        )
    # Two Laplace terms: the sum of their densities against the normal, by hand.
    sd, a, b, x = 2.0, 3.0, 5.0, 12.0
    step = 0.05
    by_hand = sum(
        math.exp(-abs(y) / a) / (2 * a) * normal_laplace_sf(x - y, sd, b) * step
        for y in (step * (i + 0.5) for i in range(-4000, 4000))
    )
    assert laplace_sum_sf(x, sd, (a, b)) == pytest.approx(by_hand, abs=1e-5)


def test_the_split_reads_the_plan_only_and_spends_the_epsilon_exactly() -> None:
    plan = means.split(1.0, indices=2, expected_n=60)
    assert plan.total == 1  # exactly
    assert plan.squares > 0  # 60 respondents: the spread is read from the squares
    _, d_sum, d_squares = means.sensitivities(2)
    assert plan.scales.sum == pytest.approx(d_sum / float(plan.sums))
    assert plan.scales.squares == pytest.approx(d_squares / float(plan.squares))
    chosen = means.planned_half_width(plan, 60)
    for count, squares in (("0.2", "0.1"), ("0.5", "0.1"), ("0.31", "0"), ("0.3", "0.3")):
        other = means.Split(
            Decimal(count), 1 - Decimal(count) - Decimal(squares), Decimal(squares), 2
        )
        assert chosen <= means.planned_half_width(other, 60) + 1e-9
    # Sampling included: about +/-11.5 points at 60 (an index at 65, answers spreading 20).
    assert 10.5 < chosen < 12.5
    assert means.planned_half_width(means.split(1.0, indices=2, expected_n=300), 300) < 4
    with pytest.raises(ValueError, match="too small to split"):
        means.split(Decimal("0.000001"), indices=2, expected_n=60)
    with pytest.raises(ValueError, match="positive"):
        means.split(0, indices=2, expected_n=60)


def test_an_interval_holds_the_estimate_and_widens_with_the_noise_and_the_spread() -> None:
    scales = means.split(1.0, indices=2, expected_n=60).scales
    # 60 respondents at 65 on average, their answers spreading about 20 points.
    tight = means.Noisy(60, 900, round((15 * 15 + 20 * 20 - means.HALF_SQUARE) * 60))
    assert means.estimate(tight) == 65
    narrow = means.interval(tight, scales)
    assert narrow.low < 65 < narrow.high
    assert 9 < (narrow.high - narrow.low) / 2 < 14
    spread = means.Noisy(60, 900, round((15 * 15 + 45 * 45 - means.HALF_SQUARE) * 60))
    assert means.interval(spread, scales).high - means.interval(spread, scales).low > (
        narrow.high - narrow.low
    )
    unknown = means.Noisy(60, 900, None)  # a release made before squares: bounded spread
    assert means.interval(unknown, scales).low <= means.interval(spread, scales).low
    # Below the reading floor a shown group may be of any size: the interval allows it.
    floor = means.reading_floor(scales.count, means.THRESHOLD)
    near = means.Noisy(floor - 1, 15 * (floor - 1), None)
    small, unguarded = means.interval(near, scales), means.interval(near, scales, threshold=0)
    assert small.low < unguarded.low - 10  # any size from one: far wider either way
    assert small.high > unguarded.high
    with pytest.raises(ValueError, match="suppressed"):
        means.interval(means.Noisy(5, 50, None), scales)
    # Noise can push a sum past what the count allows: the estimate stays on the scale.
    assert means.estimate(means.Noisy(60, 5000, None)) == 100
    assert means.estimate(means.Noisy(0, 50, None)) is None


def test_the_audits_example_counts_those_who_skipped_an_index_nowhere() -> None:
    """40 respondents answer Recovery at 100, 20 skip it: the figure is about 100 (the mean of
    those who answered), not 83 (the 20 counted at the middle), and its interval holds 100."""
    survey = load_survey(FIRST_VERSION)
    answered = {"safe_now": 5, "trust_help": 5, "stable_home": 5, "own_income": 5}
    people = [answered] * 40 + [{"believed": 4}] * 20
    found = [means.contributions(survey, answers)["recovery"] for answers in people]
    assert found.count(None) == 20
    given = [c for c in found if c is not None]
    exact = means.Noisy(len(given), sum(given), sum(c * c - means.HALF_SQUARE for c in given))
    scales = means.split(1.0, indices=2, expected_n=60).scales
    assert means.estimate(exact) == 100
    assert means.interval(exact, scales).high == 100


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
    assert means.contributions(survey, {}) == {"rights": None, "recovery": None}
    assert means.contributions(survey, {"believed": True}) == {"rights": None, "recovery": None}


def test_a_difference_is_called_only_when_its_interval_excludes_zero() -> None:
    scales = means.split(1.0, indices=2, expected_n=300).scales
    square = round((10 * 10 + 20 * 20 - means.HALF_SQUARE) * 300)
    one = means.Noisy(300, 10 * 300, square)
    same = means.Noisy(300, 10 * 300 + 300, square)  # one point apart
    apart = means.Noisy(300, 0, round((20 * 20 - means.HALF_SQUARE) * 300))  # ten apart
    near = means.difference_interval(one, same, scales, scales)
    assert near.low < 0 < near.high
    far = means.difference_interval(one, apart, scales, scales)
    assert far.low > 0
    # Holm's first step on a page of ten verdicts: a stricter level, a wider interval.
    strict = means.difference_interval(one, apart, scales, scales, alpha=0.005)
    assert strict.high - strict.low > far.high - far.low


def test_shown_groups_keep_their_coverage_whatever_their_size() -> None:
    """Among groups shown (noisy count at least 11), the interval holds the mean of the
    people sampled at least 95 times in 100 at true sizes 2, 5, 11 and 20: a shown small
    group's noisy count is the threshold plus a geometric draw whatever its size, and below
    the reading floor the interval allows for that. The noise is drawn as the worker draws
    it (OpenDP), one vector per batch, for people who mostly agree (a mean of 84, far from
    the middle, where a shown small group's inflated count pulls the estimate most: without
    the reading floor, coverage at size 2 is about 0.87)."""
    from feedback.aggregate.privacy import Noise

    plan = means.split(1.0, indices=2, expected_n=60)
    d_count, d_sum, d_squares = means.sensitivities(2)
    counts, sums, squares = (
        Noise(plan.count, d_count),
        Noise(plan.sums, d_sum),
        Noise(plan.squares, d_squares),
    )
    scales = means.Scales(counts.scale, sums.scale, squares.scale)
    population = [50] * 6 + [25] * 3 + [0, -25]
    truth = sum(population) / len(population)
    rng = random.Random(22)  # noqa: S311 - synthetic answers
    for size in (2, 5, 11, 20):
        shown = held = 0
        while shown < 1500:
            batch = 600
            samples = [rng.choices(population, k=size) for _ in range(batch)]
            noisy_n = counts.add([size] * batch)
            noisy_sum = sums.add([sum(s) for s in samples], signed=True)
            noisy_sq = squares.add(
                [sum(c * c - means.HALF_SQUARE for c in s) for s in samples], signed=True
            )
            for n, total, sq in zip(noisy_n, noisy_sum, noisy_sq, strict=True):
                if n < means.THRESHOLD:
                    continue
                shown += 1
                found = means.interval(means.Noisy(n, total, sq), scales)
                held += found.low <= means.MIDDLE + truth <= found.high
        assert held / shown >= 0.95, (size, held / shown)


def test_cells_added_up_are_read_with_noise_at_least_as_wide_as_their_sum() -> None:
    """A year of quarters (or a breakdown's groups) added up: its cells are the sums, and each
    vector's noise, a sum of independent draws, is read as one law of the same variance,
    whose tails are at least as heavy where a 95% test (or Holm's, further out) reads them:
    exactly so for the counts' discrete Laplace sums."""
    from feedback.stats.shares import noise_bound

    plan = means.split(1.0, indices=2, expected_n=250)
    parts = [(means.Noisy(250, 3000 + q, 90_000 - q), plan.scales) for q in range(4)]
    noisy, scales = means.pooled(parts)
    assert noisy == means.Noisy(1000, 12_006, 359_994)
    assert scales.sum == pytest.approx(2 * plan.scales.sum)  # four equal scales: twice one
    assert scales.squares == pytest.approx(2 * plan.scales.squares)
    # Without squares in one part, the spread is bounded only.
    older = means.pooled([*parts[:3], (means.Noisy(250, 10, None), plan.scales)])
    assert older[0].squares is None
    assert math.isinf(older[1].squares)
    for scale in (1.5, 4.0, 12.0):
        for k in (2, 4, 6):
            pooled_scale = means.pooled([(means.Noisy(1, 0, 0), means.Scales(scale, 1))] * k)[1]
            for alpha in (0.05, 0.01, 0.001):
                # The smallest t with P(|Z_1 + ... + Z_k| > t) <= alpha, exactly, against that
                # of the one law the pooled cells are read with.
                assert noise_bound(scale, k, alpha) <= noise_bound(pooled_scale.count, 1, alpha)
    # The continuous sum of two Laplace draws of scale 1 has P(|S| > t) = e^-t (1 + t/2); the
    # law it is read with, scale sqrt(2), is wider at every t where a test at 5% or less reads.
    for t in (4.3, 6.0, 9.0, 15.0):
        assert math.exp(-t) * (1 + t / 2) <= math.exp(-t / math.sqrt(2))
