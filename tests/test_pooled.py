"""Figures pooled over releases (a network's): their intervals cover sampling as well as the
noise, read the spread from the noisy squares (the Bhatia-Davis bound without them), reduce
to a release's own interval for one group, and hold the pooled mean at least 95 times in 100
when the members' noise is drawn as the worker draws it."""

from __future__ import annotations

import math
import random
from decimal import Decimal

from feedback.stats import means
from feedback.stats.pooled import Counted, pooled_mean, pooled_share
from feedback.stats.shares import share_interval

QUIET = means.Scales(0.01, 0.01, 0.01)  # next to no noise: what is left is sampling
Z95 = 1.959963984540054


def noisy(n: int, offset: float, sd: float | None) -> means.Noisy:
    """A group of ``n`` whose centred mean is ``offset`` and spread ``sd`` (None: no squares
    released)."""
    squares = None if sd is None else round((offset**2 + sd**2 - means.HALF_SQUARE) * n)
    return means.Noisy(n, round(offset * n), squares)


def test_an_index_pooled_with_next_to_no_noise_still_covers_sampling() -> None:
    found = pooled_mean([(noisy(400, 20, 15), QUIET), (noisy(600, 20, 15), QUIET)])
    assert found is not None
    assert found.value == 70
    assert found.respondents == 1000
    half = (found.high - found.low) / 2
    assert math.isclose(half, Z95 * 15 / math.sqrt(1000), rel_tol=0.05)
    # Without squares the spread is bounded (Bhatia-Davis: sd at most sqrt(50^2 - 20^2)).
    bounded = pooled_mean([(noisy(400, 20, None), QUIET), (noisy(600, 20, None), QUIET)])
    assert bounded is not None
    assert math.isclose(
        (bounded.high - bounded.low) / 2,
        Z95 * math.sqrt(2500 - 400) / math.sqrt(1000),
        rel_tol=0.05,
    )
    # Members whose means differ widen it: their spread about the pooled mean counts.
    apart = pooled_mean([(noisy(400, 5, 15), QUIET), (noisy(600, 30, 15), QUIET)])
    assert apart is not None
    assert apart.high - apart.low > found.high - found.low


def test_one_group_pooled_is_read_about_as_its_release_reads_it() -> None:
    scales = means.Scales(5.13, 181.8, 41666.7)  # epsilon 1 split for 300 respondents
    for n, offset, sd in ((60, 25, 20), (300, 25, 20), (1000, 10, 30), (300, 45, 5)):
        group = noisy(n, offset, sd)
        own = means.interval(group, scales)
        found = pooled_mean([(group, scales)])
        assert found is not None
        assert abs(found.low - own.low) < 0.6, (n, own)
        assert abs(found.high - own.high) < 0.6, (n, own)


def test_a_pooled_share_covers_binomial_sampling_and_is_a_release_s_share_for_one_group() -> None:
    for agree, rest, scale in ((90, 10, 0.9), (30, 70, 3.0), (5, 15, 9.0)):
        _, own = share_interval(agree, rest, cells_in_numerator=1, cells_in_rest=2, scale=scale)
        found = pooled_share([Counted(agree, rest, 1, 2, scale)])
        assert found is not None
        assert (found.low, found.high) == (100 * own.low, 100 * own.high)
    quiet = pooled_share([Counted(320, 80, 1, 2, 0.01), Counted(480, 120, 1, 2, 0.01)])
    assert quiet is not None
    assert quiet.value == 80
    assert math.isclose(
        (quiet.high - quiet.low) / 2, 100 * Z95 * math.sqrt(0.8 * 0.2 / 1000), rel_tol=0.05
    )
    assert pooled_share([Counted(0, 0, 1, 2, 3.0)]) is None


def test_the_chance_above_a_median_counts_sampling_too() -> None:
    """60 against a median of 55 from 30 respondents with a spread of 30: the noise alone
    would make it certain; sampling leaves it about 0.8."""
    found = pooled_mean([(noisy(30, 10, 30), QUIET)])
    assert found is not None
    assert 0.75 < found.above(55) < 0.9
    assert found.above(40) > 0.99
    assert math.isclose(found.above(60), 0.5, abs_tol=0.01)


def test_pooled_indices_hold_the_pooled_mean_among_the_groups_shown() -> None:
    """Three members of 20, 40 and 60 respondents a release, each at epsilon 1 (split as the
    planner splits it for 60), noise drawn as the worker draws it, only groups shown (noisy
    count at least 11) pooled: the interval holds the mean of the population sampled at
    least 95 times in 100 (1,000 draws; about 0.97 over larger runs)."""
    from feedback.aggregate.privacy import Noise

    population = [50] * 6 + [25] * 3 + [0, -25]
    truth = means.MIDDLE + sum(population) / len(population)
    rng = random.Random(22)  # noqa: S311 - synthetic answers
    d_count, d_sum, d_squares = means.sensitivities(2)
    plan = means.Split(Decimal("0.37"), Decimal("0.53"), Decimal("0.1"), indices=2)
    counts, sums, squares = (
        Noise(plan.count, d_count),
        Noise(plan.sums, d_sum),
        Noise(plan.squares, d_squares),
    )
    shown = held = 0
    while shown < 1000:
        drawn = []
        for size in (20, 40, 60):
            samples = [rng.choices(population, k=size) for _ in range(200)]
            scales = means.Scales(counts.scale, sums.scale, squares.scale)
            drawn.append(
                [
                    (means.Noisy(n, t, q), scales)
                    for n, t, q in zip(
                        counts.add([size] * 200),
                        sums.add([sum(s) for s in samples], signed=True),
                        squares.add(
                            [sum(c * c - means.HALF_SQUARE for c in s) for s in samples],
                            signed=True,
                        ),
                        strict=True,
                    )
                ]
            )
        for groups in zip(*drawn, strict=True):
            if any(g.n < means.THRESHOLD for g, _ in groups):
                continue
            found = pooled_mean(groups)
            assert found is not None
            shown += 1
            held += found.low <= truth <= found.high
    assert held / shown >= 0.95, held / shown
