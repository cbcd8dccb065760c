"""Shares of noisy counts and their intervals, and the accuracy preview of a planned release:
post-processing of released numbers (no budget), shared by the aggregator and the dashboard.

Intervals cover the noise only, not sampling or non-response, and are conservative: each sum of
noisy cells is bounded by its exact quantile (see ``noise_bound``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from feedback.stats.cells import AGREE, DISAGREE, NEITHER, Layout, PrivacyError
from feedback.surveys import Question

ALPHA = 0.05  # intervals are 95%


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def share_interval(
    numerator: int, rest: int, *, cells_in_numerator: int, cells_in_rest: int, scale: float
) -> tuple[float, Interval]:
    """A share numerator / (numerator + rest) of noisy counts (each a sum of that many noisy
    cells), with an interval that covers the exact share with probability at least 1 - ALPHA
    over the noise: each sum's noise is within its bound with probability 1 - ALPHA / 2 (the
    exact distribution of a sum of discrete Laplace draws; see ``noise_bound``). It covers
    noise only, not sampling or non-response."""
    hx = noise_bound(scale, cells_in_numerator, ALPHA / 2)
    hr = noise_bound(scale, cells_in_rest, ALPHA / 2)
    low_x, high_x = max(0.0, numerator - hx), max(0.0, numerator + hx)
    low_r, high_r = max(0.0, rest - hr), max(0.0, rest + hr)
    total = max(numerator, 0) + max(rest, 0)
    share = max(numerator, 0) / total if total > 0 else 0.0
    low = low_x / (low_x + high_r) if low_x + high_r > 0 else 0.0
    high = high_x / (high_x + low_r) if high_x + low_r > 0 else 1.0
    return share, Interval(low, min(1.0, high))


@functools.lru_cache(maxsize=512)
def noise_bound(scale: float, cells: int, alpha: float) -> int:
    """The smallest t with P(|Z_1 + ... + Z_cells| > t) <= alpha, for independent discrete
    Laplace Z_i of ``scale``: what a sum of noisy cells is within. Exact, not a normal
    approximation: a discrete Laplace draw is the difference of two geometric draws, so the
    sum is the difference of two negative binomials NB(cells, 1 - a), a = exp(-1 / scale)."""
    if cells < 1:
        return 0
    a = math.exp(-1 / scale)
    length = int(cells * scale + 45 * math.sqrt(cells) * scale) + 64  # tail beyond: < 1e-15
    pmf = [(1 - a) ** cells]  # P(NB = j), by the ratio of successive terms
    for j in range(1, length):
        pmf.append(pmf[-1] * a * (j + cells - 1) / j)
    tail = [0.0] * (length + 1)  # tail[m] = P(NB >= m)
    for m in range(length - 1, -1, -1):
        tail[m] = tail[m + 1] + pmf[m]

    def exceeds(t: int) -> float:  # P(|S| > t) = 2 P(NB1 - NB2 > t)
        return 2 * sum(p * tail[min(t + j + 1, length)] for j, p in enumerate(pmf))

    low, high = 0, length
    while low < high:
        middle = (low + high) // 2
        if exceeds(middle) <= alpha:
            high = middle
        else:
            low = middle + 1
    return low


def headline(
    question: Question, stored: Collection[str] = ()
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The cells of a question's headline share, and of the rest of the answers it is a share
    of: agreeing among the scale's answers, "yes" among yes and no, the first option among all
    options. "Prefer not to say" and skipped answers are in neither. ``stored`` is the cells a
    release holds: releases made before scales had three categories hold 1 to 5."""
    if question.type == "likert5":
        if "5" in stored:
            return ("4", "5"), ("1", "2", "3")
        return (AGREE,), (NEITHER, DISAGREE)
    if question.type == "yes_no":
        return ("yes",), ("no",)
    options = tuple(option.id for option in question.options)
    return options[:1], options[1:]


@dataclass(frozen=True, slots=True)
class Preview:
    """What a planned release will look like at ``n`` respondents per group, from the plan
    alone (never from data): what the admin weighs before the budget is spent."""

    epsilon: float
    n: int
    cell_half_width: int  # 95%, of any one noisy count
    share_half_width: Mapping[str, float]  # question -> expected +/- of its headline share
    suppressed_chance: float  # that a group of exactly n is suppressed


def preview(layout: Layout, epsilon: float, n: int, threshold: int) -> Preview:
    """Expected accuracy at ``n`` respondents per group: each headline share's widest
    interval half-width over true shares of 10% to 90% (the share and the rest have different
    numbers of cells, so one half is not always the widest), for a group where everyone
    answered."""
    if n < 1:
        raise PrivacyError("preview at 1 respondent or more")
    if not epsilon > 0:
        raise PrivacyError(f"epsilon must be a positive number; got {epsilon}")
    scale = layout.sensitivity / epsilon  # the aggregator's discrete Laplace scale
    widths = {}
    for question in layout.questions:
        if question.type == "comment":  # a count, not a share
            continue
        numerator, rest = headline(question)
        widest = 0.0
        for tenths in range(1, 10):
            agree = round(n * tenths / 10)
            _, interval = share_interval(
                agree,
                n - agree,
                cells_in_numerator=len(numerator),
                cells_in_rest=len(rest),
                scale=scale,
            )
            widest = max(widest, (interval.high - interval.low) / 2)
        widths[question.id] = widest
    return Preview(
        epsilon,
        n,
        noise_bound(scale, 1, ALPHA),
        widths,
        suppressed_chance(scale, n, threshold),
    )


def suppressed_chance(scale: float, n: int, threshold: int) -> float:
    """P(n + Z < threshold) for discrete Laplace noise Z of ``scale`` (closed form:
    P(Z = z) = (1 - a) / (1 + a) * a^|z|, a = exp(-1 / scale)); analysis, not sampling."""
    a = math.exp(-1 / scale)
    below = threshold - 1 - n  # suppressed when Z <= below
    if below < 0:
        return a ** (-below) / (1 + a)
    return 1 - a ** (below + 1) / (1 + a)
