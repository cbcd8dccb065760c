"""The interval program pages showed before issue 22, for the benchmarks' baselines only: it
covered the noise of one release and not sampling (a test on the respondents' exact mean,
inverted on a grid of 1/20 point; this is the code of feedback/means.py as it was, read with
one count for the group and no squares)."""

from __future__ import annotations

import functools
import math

from feedback.stats.shares import ALPHA, Interval

MIDDLE = BOUND = 50
_GRID = 20


def interval(
    noisy_sum: int, noisy_n: int, *, sum_scale: float, count_scale: float, alpha: float = ALPHA
) -> Interval:
    accepted = [
        step / _GRID
        for step in range(-BOUND * _GRID, BOUND * _GRID + 1)
        if abs(noisy_sum - step / _GRID * noisy_n)
        <= _quantile_near(step / _GRID, sum_scale, count_scale, alpha)
    ]
    if not accepted:
        return Interval(0.0, 100.0)
    step = 1 / _GRID
    return Interval(max(0.0, MIDDLE + accepted[0] - step), min(100.0, MIDDLE + accepted[-1] + step))


def _quantile_near(theta: float, sum_scale: float, count_scale: float, alpha: float) -> float:
    low, high = math.floor(abs(theta)), math.ceil(abs(theta))
    return max(
        quantile(low, sum_scale, count_scale, alpha), quantile(high, sum_scale, count_scale, alpha)
    )


@functools.lru_cache(maxsize=4096)
def quantile(theta: float, sum_scale: float, count_scale: float, alpha: float = ALPHA) -> float:
    low, high = 0.0, 1.0
    while _beyond(high, theta, sum_scale, count_scale) > alpha:
        low, high = high, high * 2
    while high - low > max(1e-3, high * 1e-4):
        middle = (low + high) / 2
        if _beyond(middle, theta, sum_scale, count_scale) > alpha:
            low = middle
        else:
            high = middle
    return high


def _beyond(t: float, theta: float, sum_scale: float, count_scale: float) -> float:
    q, p = math.exp(-1 / count_scale), math.exp(-1 / sum_scale)
    total = 0.0
    for k in range(math.ceil(40 * count_scale) + 2):
        centre = theta * k
        outside = _at_least(math.floor(centre + t) + 1, p) + _at_least(1 - math.ceil(centre - t), p)
        total += (2 if k else 1) * (1 - q) / (1 + q) * q**k * outside
    return total


def _at_least(j: int, p: float) -> float:
    if j >= 1:
        return p**j / (1 + p)
    return 1 - p ** (1 - j) / (1 + p)
