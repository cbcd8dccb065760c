"""Verdicts: Holm's procedure as published, differences read from their interval, trends
over a series, and a family of verdicts in a world with no differences that calls none."""

from __future__ import annotations

import random

from feedback.stats import means
from feedback.stats.verdicts import Difference, Trend, holm, judge

SCALES = means.split(1.0, indices=2, expected_n=300).scales


def group(mean: float, n: int = 300, spread: float = 20) -> means.Noisy:
    """A group's cells without noise: ``n`` answers around ``mean`` (0 to 100)."""
    centred = mean - means.MIDDLE
    square = centred * centred + spread * spread - means.HALF_SQUARE
    return means.Noisy(n, round(centred * n), round(square * n))


def test_holm_steps_down_and_stops_at_the_first_that_stands() -> None:
    # Holm (1979): m = 4, alpha 0.05: 0.01 <= 0.0125, 0.02 > 0.0167 stops, so 0.03 stands
    # although it is below 0.025.
    assert holm([0.03, 0.01, 0.02, 0.5]) == [False, True, False, False]
    assert holm([0.001, 0.01, 0.02, 0.04]) == [True, True, True, True]
    assert holm([]) == []


def test_a_difference_is_judged_by_the_interval_of_the_difference() -> None:
    apart = Difference(group(70), group(60), SCALES, SCALES)
    close = Difference(group(61), group(60), SCALES, SCALES)
    assert apart.p_value() < 0.001
    assert close.p_value() > 0.3
    assert judge([apart, close]) == ["higher", "can't tell"]
    assert judge([Difference(group(60), group(70), SCALES, SCALES)]) == ["lower"]
    # The p-value and the interval agree: at the p-value's level the interval reaches zero.
    p = close.p_value()
    found = means.difference_interval(close.first, close.second, SCALES, SCALES, alpha=p)
    assert abs(found.low) < 0.05


def test_a_trend_is_judged_over_the_series_not_from_neighbours() -> None:
    """Four quarters rising by 3 points each: no neighbour differs clearly, the series does."""
    quarters = [(group(55 + 3 * q), SCALES) for q in range(4)]
    neighbours = [Difference(quarters[q + 1][0], quarters[q][0], SCALES, SCALES) for q in range(3)]
    assert judge(neighbours) == ["can't tell"] * 3
    assert abs(Trend(quarters).estimate - 3) < 1e-9
    assert judge([Trend(quarters)]) == ["higher"]
    assert judge([Trend([(group(60), SCALES)] * 4)]) == ["can't tell"]


def test_no_difference_in_the_world_gives_a_false_verdict_rarely_on_a_page() -> None:
    """A page of 14 verdicts (three quarters against the one before and a trend, for two
    indices; three groups pairwise, for two) where nothing differs: noise alone (the real
    mechanism's law, drawn here) calls any of them in at most about 5 pages in 100."""
    from feedback.aggregate.privacy import Noise

    d_count, d_sum, d_squares = means.sensitivities(2)
    plan = means.split(1.0, indices=2, expected_n=300)
    counts, sums = Noise(plan.count, d_count), Noise(plan.sums, d_sum)
    squares = Noise(plan.squares, d_squares)
    rng = random.Random(5)  # noqa: S311 - synthetic answers
    people = [rng.choice((-50, -25, 0, 25, 25, 50, 50)) for _ in range(4000)]
    pages, false = 120, 0
    for _ in range(pages):
        cells = []
        for _ in range(14):  # 4 quarters and 3 groups for 2 indices
            sample = rng.sample(people, 300)
            [n] = counts.add([300])
            [total] = sums.add([sum(sample)], signed=True)
            [square] = squares.add([sum(c * c - means.HALF_SQUARE for c in sample)], signed=True)
            cells.append((means.Noisy(n, total, square), SCALES))
        tests: list[Difference | Trend] = []
        for index in (0, 7):
            quarters, groups = cells[index : index + 4], cells[index + 4 : index + 7]
            tests += [
                Difference(quarters[q + 1][0], quarters[q][0], SCALES, SCALES) for q in range(3)
            ]
            tests.append(Trend(quarters))
            tests += [
                Difference(groups[a][0], groups[b][0], SCALES, SCALES)
                for a, b in ((0, 1), (0, 2), (1, 2))
            ]
        false += any(v != "can't tell" for v in judge(tests))
    assert false / pages <= 0.05 + 3 * (0.05 * 0.95 / pages) ** 0.5
