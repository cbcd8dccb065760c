"""Shares of noisy counts and their intervals, and the accuracy preview of a planned release:
post-processing of released numbers (no budget), shared by the aggregator and the dashboard.

A share's interval covers sampling (the respondents as a sample of the people a program
serves; who chose not to answer stays a stated limit) and the noise (``share_interval``). A
count's (``noise_bound``) covers the noise: it is the count of this period's answers, not an
estimate of anything beyond them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from feedback.stats.cells import AGREE, DISAGREE, NEITHER, Layout, PrivacyError
from feedback.surveys import Question

ALPHA = 0.05  # intervals are 95%


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def share_interval(
    numerator: int,
    rest: int,
    *,
    cells_in_numerator: int,
    cells_in_rest: int,
    scale: float,
    alpha: float = ALPHA,
) -> tuple[float | None, Interval]:
    """A share numerator / (numerator + rest) of noisy counts (each a sum of that many noisy
    cells of discrete Laplace ``scale``), with an interval on the share in the population the
    respondents are a sample of (see ``pooled_share_interval``)."""
    return pooled_share_interval(
        numerator, rest, ((cells_in_numerator, cells_in_rest, scale),), alpha
    )


Cells = tuple[tuple[int, int, float], ...]  # per release: cells in the share, in the rest, scale


@functools.lru_cache(maxsize=8192)
def pooled_share_interval(
    numerator: int, rest: int, cells: Cells, alpha: float = ALPHA
) -> tuple[float | None, Interval]:
    """A share of noisy counts summed over releases (``cells``: how many noisy cells of each
    release's scale the share's counts and the rest's add up), with an interval on the share
    in the population the respondents are a sample of, covering it with probability at least
    1 - alpha over sampling and noise. It inverts a test of each share ``pi``:

        T = numerator - pi * (numerator + rest) = (A - pi m) + (1 - pi) Z_num - pi Z_rest

    the sampling term normal with variance m pi (1 - pi) (m the noisy total, at least 1: a
    proportion's variance is fixed by pi, so it costs no epsilon), each noisy cell a Laplace
    of scale (1 - pi) or pi times its release's (``fold_laplaces``), with one unit of slack on
    T for discreteness.

    The share itself is the ratio of the raw noisy counts, clamped to [0, 1] only at the end
    (None when their total is below one). Clamping each count at zero first biases a share
    toward the middle at small counts; neither is unbiased there, and the interval, built
    from the raw counts, is what to read (docs/privacy.md)."""
    total = numerator + rest
    share = None if total < 1 else min(1.0, max(0.0, numerator / total))
    m = max(total, 1)

    def accepts(pi: float) -> bool:
        t = numerator - pi * m
        folded, laplaces = fold_laplaces(
            [
                b
                for in_share, in_rest, scale in cells
                for b in [(1 - pi) * scale] * in_share + [pi * scale] * in_rest
            ]
        )
        sd = math.sqrt(m * pi * (1 - pi) + folded)
        up, low = laplace_sum_sf(t - 1, sd, laplaces), laplace_sum_sf(-t - 1, sd, laplaces)
        return min(1.0, 2 * min(up, low)) > alpha

    centre = min(0.999, max(0.001, numerator / m))
    if not accepts(centre):
        found = next((step / 20 for step in range(1, 20) if accepts(step / 20)), None)
        if found is None:
            return share, Interval(0.0, 1.0)
        centre = found

    def edge(end: float) -> float:
        if accepts(end):
            return round(end)  # the whole way: 0 or 1
        good, bad = centre, end
        while abs(bad - good) > 0.0005:
            middle = (good + bad) / 2
            if accepts(middle):
                good = middle
            else:
                bad = middle
        return min(1.0, max(0.0, bad))  # the first share found rejected: outward

    return share, Interval(edge(1e-9), edge(1 - 1e-9))


EXACT_LAPLACES = 3  # the largest noise terms taken exactly; the others folded into the normal
FOLDED = 1.25  # the folded terms' variance is raised so: a normal of 1.25 times a Laplace's
# variance has the larger 97.5% point (3.10 against 3.00 scales), however few are folded


def fold_laplaces(scales: Sequence[float]) -> tuple[float, tuple[float, ...]]:
    """Of Laplace noise terms of the given scales: the variance to fold into the normal part
    (all but the EXACT_LAPLACES largest, raised by FOLDED) and the scales taken exactly."""
    ordered = sorted(scales, reverse=True)
    folded = sum(2 * b * b for b in ordered[EXACT_LAPLACES:]) * FOLDED
    return folded, tuple(ordered[:EXACT_LAPLACES])


def laplace_sum_sf(x: float, sd: float, scales: Sequence[float]) -> float:
    """P(N(0, sd^2) + L_1 + ... + L_k > x) for independent continuous Laplace L_i of the
    given scales. By partial fractions of the characteristic function the law is a signed
    mixture of single normal-Laplace laws with weights prod_j s_i^2 / (s_i^2 - s_j^2); scales
    closer than a ratio of 1.002 are moved apart, upward (heavier tails), and scales below
    1e-6 dropped. Meant for a few terms (see EXACT_LAPLACES)."""
    kept = sorted(b for b in scales if b > 1e-6)
    if not kept:
        return 0.5 * math.erfc(x / (sd * _SQRT2)) if sd > 0 else float(x < 0)
    for i in range(1, len(kept)):
        kept[i] = max(kept[i], kept[i - 1] * 1.002)
    total = 0.0
    for i, si in enumerate(kept):
        weight = 1.0
        for j, sj in enumerate(kept):
            if j != i:
                weight *= si * si / (si * si - sj * sj)
        total += weight * normal_laplace_sf(x, sd, si)
    return total


def normal_laplace_sf(x: float, sd: float, b: float) -> float:
    """P(N(0, sd^2) + L > x), L a continuous Laplace of scale b > 0 (Reed 2006's
    normal-Laplace law, in a form that neither overflows nor underflows)."""
    if x < 0:
        return 1.0 - normal_laplace_sf(-x, sd, b)
    if sd <= 1e-12:
        return 0.5 * math.exp(-x / b)
    u, r = x / sd, sd / b
    g = 0.5 * math.exp(-0.5 * u * u)
    z1 = r - u
    if z1 >= 0:
        t1 = g * _erfcx(z1 / _SQRT2)
    else:
        t1 = math.exp(0.5 * r * r - x / b) * 0.5 * math.erfc(z1 / _SQRT2)
    t2 = g * _erfcx((r + u) / _SQRT2)
    return 0.5 * math.erfc(u / _SQRT2) + 0.5 * (t1 - t2)


_SQRT2 = math.sqrt(2)
_SQRTPI = math.sqrt(math.pi)


def _erfcx(y: float) -> float:
    """exp(y*y) * erfc(y) for y >= 0, without overflow."""
    if y < 25:
        return math.exp(y * y) * math.erfc(y)
    y2 = y * y
    return (1 - 0.5 / y2 + 0.75 / (y2 * y2)) / (y * _SQRTPI)


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
    interval half-width (sampling and noise, with the noise at zero) over true shares of 10%
    to 90% (the share and the rest have different
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
