"""Indices ("Treated with rights", "Recovery"): each respondent's mean over the index's items
they answered, on 0 to 100, released as a noisy sum of contributions centred on the middle of
the scale beside one noisy count of respondents (../shared/PRIVACY.md, Statistics chosen for
small programs; the method is in docs/privacy.md).

What is here needs no budget: scoring a respondent (the worker, before noise), splitting a
planned epsilon between the sums and the count, and the interval on an index's mean that the
noise allows (post-processing of released numbers, for the aggregator and the dashboard).

The interval inverts a test whose statistic is pivotal: if the centred mean is ``theta``, then
``noisy_sum - theta * noisy_n = Z_sum - theta * Z_n`` whatever the data, so the set of every
``theta`` with ``|noisy_sum - theta * noisy_n|`` within the (1 - ALPHA) quantile of
``|Z_sum - theta * Z_n|`` covers the exact mean with probability at least 1 - ALPHA over the
noise. The quantile is computed exactly from the two discrete Laplace distributions. Like the
shares' intervals, it covers the noise only, not sampling or non-response.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from feedback.stats.shares import ALPHA, Interval
from feedback.surveys import INDICES, IndexName, Survey

MIDDLE = 50  # contributions are centred here, on the 0-100 scale
BOUND = 50  # |contribution| <= BOUND: what one respondent moves an index's sum by, at most
# The split of epsilon is chosen for an index this far from the middle (25 or 75): the count's
# noise moves the mean in proportion to that distance, so the further, the more the count gets.
PLANNED_OFFSET = 25
# The count of respondents gets at least this much of an indices release's epsilon: a count
# noised more than that says nothing, and the exact interval's cost grows with its scale (the
# sum over the count's noise runs to 40 times the scale), so every split stays cheap to read.
LEAST_COUNT = Decimal("0.02")
LEAST_EPSILON = Decimal("0.05")  # the least an indices release can be planned at
_GRID = 20  # steps per point when the interval's ends are searched for


def item_points(value: int, *, reverse: bool = False) -> int:
    """A Likert answer (1 to 5) on 0 to 100, agreement high (or, for a reversed item, low)."""
    if value not in (1, 2, 3, 4, 5):
        raise ValueError(f"a Likert answer is 1 to 5; got {value!r}")
    return (5 - value if reverse else value - 1) * 25


def contribution(points: Sequence[int]) -> int:
    """A respondent's centred contribution to an index's sum: the mean of the item points they
    gave (rounded to a whole point), minus MIDDLE. One who answered none of the index's items
    contributes 0, as if at the middle: they are in the shared count of respondents."""
    if not points:
        return 0
    mean = sum(points) / len(points)
    return min(BOUND, max(-BOUND, math.floor(mean + 0.5) - MIDDLE))


def contributions(survey: Survey, answers: Mapping[str, object]) -> dict[IndexName, int]:
    """One respondent's contribution to each index, from their checked answers: the items
    tagged with it that they answered on the scale ("prefer not to say" and skipped items
    leave it)."""
    found: dict[IndexName, int] = {}
    for index in INDICES:
        points = [
            item_points(value, reverse=item.reverse)
            for item in survey.items_of(index)
            if type(value := answers.get(item.id)) is int  # (a bool is no answer)
        ]
        found[index] = contribution(points)
    return found


@dataclass(frozen=True, slots=True)
class Split:
    """A planned epsilon, divided between the indices' sums (all of them, one vector whose L1
    sensitivity is ``indices * BOUND``) and the count of respondents (sensitivity 1). The
    parts are decimals that add up to the planned epsilon exactly, so that what the ledger
    records for the two never exceeds the plan."""

    sums: Decimal
    count: Decimal
    indices: int

    @property
    def sum_scale(self) -> float:
        return self.indices * BOUND / float(self.sums)

    @property
    def count_scale(self) -> float:
        return 1 / float(self.count)


@functools.lru_cache(maxsize=256)
def split(epsilon: float | Decimal, *, indices: int, expected_n: int) -> Split:
    """The division of ``epsilon`` that makes the planned interval on an index's mean (for a
    program of ``expected_n`` respondents, an index PLANNED_OFFSET from the middle) as narrow
    as possible: the count's share is searched in steps of five percent, then of one percent
    around the best (the width falls, then rises, as the count's share grows)."""
    total = Decimal(str(epsilon))
    if not (total.is_finite() and total > 0):
        raise ValueError(f"epsilon must be a positive number; got {epsilon}")
    if total < LEAST_EPSILON:
        raise ValueError(
            f"epsilon {epsilon} is too small to split between sums and a count: an indices "
            f"release needs at least {LEAST_EPSILON}"
        )
    places = Decimal("0.000001")

    def candidate(percent: int) -> Split | None:
        count = (total * percent / 100).quantize(places, rounding=ROUND_FLOOR)
        if count < LEAST_COUNT:
            return None
        return Split(sums=total - count, count=count, indices=indices)

    def best(percents: Iterable[int]) -> tuple[int, Split] | None:
        found = [(p, c) for p in percents if (c := candidate(p)) is not None]
        if not found:
            return None
        # Ties (widths capped at the whole scale) go to the larger count: cheaper to read.
        return min(found, key=lambda pair: (planned_half_width(pair[1], expected_n), -pair[0]))

    coarse = best(range(5, 81, 5))
    if coarse is None:
        raise ValueError(f"epsilon {epsilon} is too small to split between sums and a count")
    fine = best(range(max(1, coarse[0] - 4), min(80, coarse[0] + 4) + 1))
    return fine[1] if fine is not None else coarse[1]


def planned_half_width(plan: Split, n: int, offset: float = PLANNED_OFFSET) -> float:
    """The half-width, in points, of the interval on the mean of an index ``offset`` from the
    middle, for ``n`` respondents, when the noise happens to be zero: what a plan can promise."""
    if n < 1:
        return float(MIDDLE)
    return min(float(MIDDLE), quantile(offset, plan.sum_scale, plan.count_scale, ALPHA) / n)


def estimate(noisy_sum: int, noisy_n: int) -> float | None:
    """An index's mean on 0 to 100, from its noisy sum and the noisy count; None when the
    noisy count is below one."""
    if noisy_n < 1:
        return None
    return MIDDLE + min(BOUND, max(-BOUND, noisy_sum / noisy_n))


def interval(
    noisy_sum: int, noisy_n: int, *, sum_scale: float, count_scale: float, alpha: float = ALPHA
) -> Interval:
    """The interval, on 0 to 100, that covers an index's exact mean with probability at least
    1 - alpha over the noise (see the module's docstring). It is the whole scale when the
    noise allows every mean."""
    accepted = [
        step / _GRID
        for step in range(-BOUND * _GRID, BOUND * _GRID + 1)
        if abs(noisy_sum - step / _GRID * noisy_n)
        <= _quantile_near(step / _GRID, sum_scale, count_scale, alpha)
    ]
    if not accepted:  # no mean fits the noise at this level (chance below ALPHA): say nothing
        return Interval(0.0, 100.0)
    # The ends lie within a step of the last means accepted: a step more, on each side.
    step = 1 / _GRID
    return Interval(max(0.0, MIDDLE + accepted[0] - step), min(100.0, MIDDLE + accepted[-1] + step))


def _quantile_near(theta: float, sum_scale: float, count_scale: float, alpha: float) -> float:
    """The quantile at ``theta``, taken at the whole points either side (the larger: the
    quantile grows with the distance from the middle), so that few are computed."""
    low, high = math.floor(abs(theta)), math.ceil(abs(theta))
    return max(
        quantile(low, sum_scale, count_scale, alpha),
        quantile(high, sum_scale, count_scale, alpha),
    )


@functools.lru_cache(maxsize=4096)
def quantile(theta: float, sum_scale: float, count_scale: float, alpha: float) -> float:
    """The smallest t (to a thousandth, or to a ten-thousandth of t) with
    P(|Z_sum - theta * Z_n| > t) <= alpha, for independent discrete Laplace Z_sum and Z_n of
    the given scales."""
    low, high = 0.0, 1.0
    while _beyond(high, theta, sum_scale, count_scale) > alpha:
        low, high = high, high * 2
    while high - low > max(1e-3, high * 1e-4):  # the upper end is kept: conservative
        middle = (low + high) / 2
        if _beyond(middle, theta, sum_scale, count_scale) > alpha:
            low = middle
        else:
            high = middle
    return high


def _beyond(t: float, theta: float, sum_scale: float, count_scale: float) -> float:
    """P(|Z_sum - theta * Z_n| > t), summed over the values of Z_n (its tail past the last
    term is below 1e-17). Z_sum is symmetric, so Z_n = k and Z_n = -k give the same
    probability: each k above 0 is counted twice."""
    q = math.exp(-1 / count_scale)
    p = math.exp(-1 / sum_scale)
    reach = math.ceil(40 * count_scale) + 1
    total = 0.0
    for k in range(reach + 1):
        centre = theta * k
        outside = _at_least(math.floor(centre + t) + 1, p) + _at_least(1 - math.ceil(centre - t), p)
        total += (2 if k else 1) * (1 - q) / (1 + q) * q**k * outside
    return total


def _at_least(j: int, p: float) -> float:
    """P(Z >= j) for a discrete Laplace Z with P(Z = k) proportional to p ** |k|."""
    if j >= 1:
        return p**j / (1 + p)
    return 1 - p ** (1 - j) / (1 + p)
