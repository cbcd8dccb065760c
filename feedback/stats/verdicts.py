"""Verdicts that do not invent findings: whether one group's (or period's) index is higher or
lower than another's, and whether an index rises or falls over a series of periods, decided
from the released numbers only (post-processing) and, where a page shows several, together:
Holm's procedure keeps the chance that any verdict of the family is wrong at ALPHA.

A difference is judged by the interval of the difference (``means.difference_interval``:
sampling and noise of both groups); its p-value is the level at which that interval just
reaches zero, so "the interval excludes zero at level a" and "p < a" say the same. A trend is
the weighted least-squares slope of the estimates over the periods, each weighted by the
inverse of its error's variance (sampling, the count's noise and the sum's Laplace noise), with
a normal test; a year of quarters is judged as one series, not as pairs of neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from feedback.stats.means import Noisy, Scales, error_of
from feedback.stats.shares import ALPHA, laplace_sum_sf

Verdict = Literal["higher", "lower", "can't tell"]


@dataclass(frozen=True, slots=True)
class Difference:
    """First against second: two groups, or a period against the one before."""

    first: Noisy
    second: Noisy
    first_scales: Scales
    second_scales: Scales

    @property
    def estimate(self) -> float:
        """first's estimate minus second's, in points."""
        return (
            error_of(self.first, self.first_scales).mean
            - error_of(self.second, self.second_scales).mean
        )

    def p_value(self) -> float:
        one = error_of(self.first, self.first_scales)
        other = error_of(self.second, self.second_scales)
        sd = math.sqrt(one.variance + other.variance)
        beyond = laplace_sum_sf(abs(one.mean - other.mean), sd, (one.laplace, other.laplace))
        return min(1.0, 2 * beyond)


@dataclass(frozen=True, slots=True)
class Trend:
    """An index over consecutive periods, oldest first."""

    points: Sequence[tuple[Noisy, Scales]]

    @property
    def estimate(self) -> float:
        """The slope, in points per period."""
        return self._fit()[0]

    def p_value(self) -> float:
        slope, sd = self._fit()
        if sd <= 0 or len(self.points) < 3:
            return 1.0
        return math.erfc(abs(slope) / sd / math.sqrt(2))

    def _fit(self) -> tuple[float, float]:
        errors = [error_of(noisy, scales) for noisy, scales in self.points]
        weights = [1 / (e.variance + 2 * e.laplace * e.laplace) for e in errors]
        total = sum(weights)
        centre = sum(w * t for t, w in enumerate(weights)) / total
        spread = sum(w * (t - centre) ** 2 for t, w in enumerate(weights))
        if spread <= 0:
            return 0.0, 0.0
        slope = (
            sum(
                w * (t - centre) * e.mean
                for t, (w, e) in enumerate(zip(weights, errors, strict=True))
            )
            / spread
        )
        return slope, math.sqrt(1 / spread)


Test = Difference | Trend


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects: the smallest p-value against
    alpha / m, the next against alpha / (m - 1), ..., stopping at the first that stands.
    The chance that any rejection is wrong stays at most alpha, whatever the dependence."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for step, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - step):
            break
        rejected[i] = True
    return rejected


def judge(tests: Sequence[Test], alpha: float = ALPHA) -> list[Verdict]:
    """The verdict of each test of one family (one page): "higher" or "lower" (for a trend:
    rising or falling) where Holm's procedure rejects "no difference", else "can't tell"."""
    rejected = holm([test.p_value() for test in tests], alpha)
    return [
        ("higher" if test.estimate > 0 else "lower") if found else "can't tell"
        for test, found in zip(tests, rejected, strict=True)
    ]
