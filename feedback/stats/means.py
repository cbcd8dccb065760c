"""Indices ("Treated with rights", "Recovery"): each respondent's mean over the index's items
they answered, on 0 to 100, released as noisy sums of contributions centred on the middle of
the scale, with a noisy count of those who answered the index and a noisy sum of their
squares (../shared/PRIVACY.md, Statistics chosen for small programs and What an interval
covers; the method and its evidence are in docs/privacy.md).

What is here needs no budget: scoring a respondent (the worker, before noise), splitting a
planned epsilon between the counts, the sums and the squares, and reading released numbers
(post-processing, for the aggregator and every page): the estimate, its interval, the
interval of a difference.

The interval is on the mean of the population the respondents are a sample of, and covers
sampling and noise among the groups shown. It inverts a test of a candidate mean ``theta``
(centred):

    T(theta) = noisy_sum - theta * noisy_n = sum(c_i - theta) + Z_sum - theta * Z_n

The sampling term is taken as normal with variance n * (M - theta**2), M the population's
mean square of contributions, estimated from the released squares (plug-in, raised by half
the squares' noise scale per respondent, never above the Bhatia-Davis bound); the noise terms
are exact (a sum over the count's discrete Laplace values; the sum's noise as a Laplace with
half a unit of slack). Among the groups shown, a small group's noisy count is the threshold
plus a geometric draw whatever its size, so below a reading floor of the noisy count the
test allows any group size from one. The structure is Du, Foot, Moniot, Bray and Groce 2020's
noisy sum and noisy variance; the count's allowance is a union bound in the manner of Karwa
and Vadhan 2018. Releases made before squares were released are read with the Bhatia-Davis
bound alone (wider, still covering).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from feedback.stats.cells import SUPPRESSED
from feedback.stats.shares import ALPHA, Interval, laplace_sum_sf, normal_laplace_sf
from feedback.surveys import INDICES, IndexName, Survey

MIDDLE = 50  # contributions are centred here, on the 0-100 scale
BOUND = 50  # |contribution| <= BOUND: what one respondent moves an index's sum by, at most
HALF_SQUARE = BOUND * BOUND // 2  # a square is released centred: c*c - HALF_SQUARE
TOP_SQUARE = BOUND * BOUND  # c*c <= TOP_SQUARE: the Bhatia-Davis bound on the mean square
THRESHOLD = 11  # the default release threshold: a group is shown when its noisy n reaches it

ALPHA_COUNT = 0.025  # of ALPHA, below the reading floor: that a small group reads above it
KAPPA = 0.5  # the noisy mean square is raised by this many squares' noise scales per person
# The plan: the split is chosen for an index this far from the middle (65: where programs'
# indices usually sit, as feedback surveys lean to agreement), with this spread of answers.
PLANNED_OFFSET = 15
PLANNED_SD = 20
LEAST_COUNT_PERCENT = 5  # the counts get at least this share of an indices release's epsilon
LEAST_EPSILON = Decimal("0.05")  # the least an indices release can be planned at
# The squares' noise per planned respondent is at most this (in units of c*c), or the release
# carries no squares and the spread is bounded by Bhatia-Davis alone: a noisier mean square
# falls below the truth too often where the spread is large (docs/privacy.md).
MOST_SQUARES_NOISE = TOP_SQUARE / 6
MOST_BELOW_FLOOR = 0.05  # a group of the planned size lands below the reading floor at most so
STEP = 0.05  # the interval's ends are found to this many points, rounded outward
_TAIL = 1e-7  # the count's noise is summed until the mass left is below this


def item_points(value: int, *, reverse: bool = False) -> int:
    """A Likert answer (1 to 5) on 0 to 100, agreement high (or, for a reversed item, low)."""
    if value not in (1, 2, 3, 4, 5):
        raise ValueError(f"a Likert answer is 1 to 5; got {value!r}")
    return (5 - value if reverse else value - 1) * 25


def contribution(points: Sequence[int]) -> int | None:
    """A respondent's centred contribution to an index: the mean of the item points they gave
    (rounded to a whole point), minus MIDDLE. None for one who answered none of the index's
    items: they are in none of its cells, so the figure is the mean of those who answered."""
    if not points:
        return None
    mean = sum(points) / len(points)
    return min(BOUND, max(-BOUND, math.floor(mean + 0.5) - MIDDLE))


def contributions(survey: Survey, answers: Mapping[str, object]) -> dict[IndexName, int | None]:
    """One respondent's contribution to each index, from their checked answers: the items
    tagged with it that they answered on the scale ("prefer not to say" and skipped items
    leave it)."""
    found: dict[IndexName, int | None] = {}
    for index in INDICES:
        points = [
            item_points(value, reverse=item.reverse)
            for item in survey.items_of(index)
            if type(value := answers.get(item.id)) is int  # (a bool is no answer)
        ]
        found[index] = contribution(points)
    return found


def sensitivities(indices: int) -> tuple[int, int, int]:
    """L1 sensitivities of the three vectors (counts, sums, squares) of a release of
    ``indices`` indices: a respondent is in one group and moves each index's three cells by
    at most 1, BOUND and HALF_SQUARE."""
    return indices, indices * BOUND, indices * HALF_SQUARE


@dataclass(frozen=True, slots=True)
class Scales:
    """Discrete Laplace scales of the three vectors, as stored beside a release."""

    count: float
    sum: float
    squares: float = math.inf  # inf: no squares released (the spread is bounded only)


@dataclass(frozen=True, slots=True)
class Split:
    """A planned epsilon divided between the counts, the sums and the squares: decimals that
    add up to the planned epsilon exactly, so that what the ledger records for the three
    never exceeds the plan."""

    count: Decimal
    sums: Decimal
    squares: Decimal
    indices: int

    @property
    def total(self) -> Decimal:
        return self.count + self.sums + self.squares

    @property
    def scales(self) -> Scales:
        d_n, d_s, d_q = sensitivities(self.indices)
        return Scales(
            count=d_n / float(self.count),
            sum=d_s / float(self.sums),
            squares=d_q / float(self.squares) if self.squares > 0 else math.inf,
        )


@functools.lru_cache(maxsize=256)
def split(
    epsilon: float | Decimal,
    *,
    indices: int,
    expected_n: int,
    threshold: int = THRESHOLD,
) -> Split:
    """The division of ``epsilon`` that makes the planned interval (``planned_half_width``)
    as narrow as possible, among the splits whose squares are absent or precise enough
    (MOST_SQUARES_NOISE at ``expected_n``) and whose count puts a group of ``expected_n``
    above the reading floor (MOST_BELOW_FLOOR; waived where no split can). Searched on a grid
    of five percent, then of one percent around the best. Reads the plan only."""
    total = Decimal(str(epsilon))
    if not (total.is_finite() and total > 0):
        raise ValueError(f"epsilon must be a positive number; got {epsilon}")
    if total < LEAST_EPSILON:
        raise ValueError(
            f"epsilon {epsilon} is too small to split between counts, sums and squares: an "
            f"indices release needs at least {LEAST_EPSILON}"
        )
    places = Decimal("0.000001")

    def make(count_percent: int, squares_percent: int) -> Split | None:
        if count_percent < LEAST_COUNT_PERCENT or count_percent + squares_percent > 90:
            return None
        count = (total * count_percent / 100).quantize(places, rounding=ROUND_FLOOR)
        squares = (total * squares_percent / 100).quantize(places, rounding=ROUND_FLOOR)
        found = Split(count, total - count - squares, squares, indices)
        if squares > 0 and found.scales.squares / max(expected_n, 1) > MOST_SQUARES_NOISE:
            return None
        return found

    def readable(plan: Split) -> bool:
        gap = expected_n - reading_floor(plan.scales.count, threshold)
        p = math.exp(-1 / plan.scales.count)
        return gap >= 1 and p**gap / (1 + p) <= MOST_BELOW_FLOOR

    def best(pairs: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], Split]:
        found = [(pair, plan) for pair in pairs if (plan := make(*pair)) is not None]
        found = [f for f in found if readable(f[1])] or found
        # Ties (widths capped at the whole scale) go to the larger count: cheaper to read.
        return min(
            found,
            key=lambda f: (planned_half_width(f[1], expected_n, threshold=threshold), -f[0][0]),
        )

    (count, squares), _ = best((c, q) for c in range(5, 61, 5) for q in range(0, 51, 5))
    fine = (
        (c, q)
        for c in range(max(1, count - 4), count + 5)
        for q in range(max(0, squares - 4), squares + 5)
    )
    return best(fine)[1]


def planned_half_width(
    plan: Split, n: int, offset: float = PLANNED_OFFSET, *, threshold: int = THRESHOLD
) -> float:
    """The half-width, in points, of the interval at ``n`` respondents when the noise happens
    to be zero, for an index ``offset`` from the middle whose respondents' spread is
    PLANNED_SD: what a plan can promise, sampling included."""
    if n < 1:
        return float(MIDDLE)
    square = offset * offset + PLANNED_SD * PLANNED_SD
    planned = Noisy(n=n, sum=round(offset * n), squares=round((square - HALF_SQUARE) * n))
    found = interval(planned, plan.scales, threshold=min(threshold, n))
    return (found.high - found.low) / 2


@dataclass(frozen=True, slots=True)
class Noisy:
    """One index's released cells in one group."""

    n: int
    sum: int
    squares: int | None  # None: the release carries no squares


def stored_scales(cells: Mapping[str, Any]) -> Scales:
    """The scales a stored indices release was noised with (one made before squares were
    released has none: its spread is bounded only)."""
    squares = cells.get("squares_scale")
    return Scales(
        float(cells["count_scale"]),
        float(cells["sum_scale"]),
        math.inf if squares is None else float(squares),
    )


def stored_group(cells: Mapping[str, Any], group: str) -> dict[IndexName, Noisy]:
    """The indices shown in one group of a stored indices release, by index: those missing
    were suppressed. A release made before each index had a count of its own holds one count
    for the group (respondents who skipped an index were in it at the middle) and no squares."""
    found = next(g for g in cells["groups"] if g["group"] == group)
    if "indices" in found:
        return {
            index: Noisy(shown["n"], shown["sum"], shown.get("squares"))
            for index, shown in found["indices"].items()
            if shown != SUPPRESSED
        }
    if found["n"] == SUPPRESSED:
        return {}
    return {index: Noisy(found["n"], total, None) for index, total in found["sums"].items()}


def pooled(parts: Sequence[tuple[Noisy, Scales]]) -> tuple[Noisy, Scales]:
    """The cells of disjoint groups added up (a year of its quarters, or the groups of a
    breakdown: post-processing), with the scales of single laws as wide as the sums of their
    noise: each vector's noise is a sum of independent Laplace draws, read as one Laplace of
    the same variance, whose tails are the heavier where a test at 95% or beyond reads them
    (docs/privacy.md, What the page shows, and withholds). No squares when a part has none."""
    if not parts:
        raise ValueError("nothing to pool")
    squares = [noisy.squares for noisy, _ in parts]
    sq_scales = [scales.squares for _, scales in parts]
    no_squares = any(s is None for s in squares) or any(math.isinf(s) for s in sq_scales)
    count_variance = sum(discrete_variance(scales.count) for _, scales in parts)
    return (
        Noisy(
            sum(noisy.n for noisy, _ in parts),
            sum(noisy.sum for noisy, _ in parts),
            None if no_squares else sum(s for s in squares if s is not None),
        ),
        Scales(
            _discrete_scale(count_variance),
            math.sqrt(sum(scales.sum**2 for _, scales in parts)),
            math.inf if no_squares else math.sqrt(sum(s * s for s in sq_scales)),
        ),
    )


def discrete_variance(scale: float) -> float:
    """The variance of a discrete Laplace draw of ``scale``: 2p / (1 - p)^2, p = e^(-1/scale)."""
    p = math.exp(-1 / scale)
    return 2 * p / (1 - p) ** 2


def _discrete_scale(variance: float) -> float:
    """The discrete Laplace scale of a given variance (the root of v(1 - p)^2 = 2p in (0, 1))."""
    p = (variance + 1 - math.sqrt(2 * variance + 1)) / variance
    return -1 / math.log(p)


def estimate(noisy: Noisy) -> float | None:
    """The index's mean on 0 to 100; None when the noisy count is below one."""
    if noisy.n < 1:
        return None
    return MIDDLE + min(BOUND, max(-BOUND, noisy.sum / noisy.n))


@functools.lru_cache(maxsize=8192)
def interval(
    noisy: Noisy,
    scales: Scales,
    *,
    threshold: int = THRESHOLD,
    alpha: float = ALPHA,
) -> Interval:
    """The interval, on 0 to 100, on the mean of the population the respondents are a simple
    random sample of, covering it with probability at least 1 - alpha over sampling and
    noise among the groups shown (noisy count at least ``threshold``; 0: every group). The
    whole scale when no mean fits (probability below alpha)."""
    if noisy.n < max(threshold, 1):
        raise ValueError("a suppressed group has no interval")
    test = _Test.make(noisy, scales, threshold, alpha)
    centre = min(BOUND, max(-BOUND, noisy.sum / noisy.n))
    if not test.accepts(centre):
        found = next((float(t) for t in range(-BOUND, BOUND + 1, 5) if test.accepts(t)), None)
        if found is None:
            return Interval(0.0, 100.0)
        centre = found
    return Interval(MIDDLE + _edge(test, centre, -BOUND), MIDDLE + _edge(test, centre, BOUND))


def reading_floor(count_scale: float, threshold: int) -> int:
    """The least noisy count at which a group smaller than the threshold is implausible
    (given that it is shown, a small group's noisy count is the threshold plus a geometric
    draw, whatever its size: P(at least this | shown) <= ALPHA_COUNT). Below it the interval
    allows any group size from one, and is very wide."""
    if threshold <= 0:
        return 0
    p = math.exp(-1 / count_scale)
    return threshold + math.ceil(math.log(ALPHA_COUNT) / math.log(p) - 1e-9)


def second_moment(noisy: Noisy, scales: Scales) -> float:
    """The population's mean of c*c as the test takes it: from the noisy squares, raised by
    KAPPA of the squares' noise scale per respondent (what clamping at TOP_SQUARE takes off
    for a population at that bound), within [0, TOP_SQUARE]; TOP_SQUARE without squares."""
    if noisy.squares is None or math.isinf(scales.squares):
        return float(TOP_SQUARE)
    raw = HALF_SQUARE + (noisy.squares + KAPPA * scales.squares) / max(noisy.n, 1)
    return min(float(TOP_SQUARE), max(0.0, raw))


@dataclass(frozen=True, slots=True)
class Error:
    """What moves a group's estimate, centred: its normal part (sampling, and the count's
    noise) and the Laplace scale of its sum's noise."""

    mean: float
    variance: float
    laplace: float


def error_of(noisy: Noisy, scales: Scales) -> Error:
    n = max(noisy.n, 1)
    mean = min(BOUND, max(-BOUND, noisy.sum / n))
    sampling = max(0.0, second_moment(noisy, scales) - mean * mean) / n
    count_variance = discrete_variance(scales.count)
    return Error(mean, sampling + mean * mean * count_variance / (n * n), scales.sum / n)


def difference_interval(
    first: Noisy,
    second: Noisy,
    first_scales: Scales,
    second_scales: Scales,
    *,
    alpha: float = ALPHA,
) -> Interval:
    """An interval, in points, on first's population mean minus second's, for two groups
    with independent noise (two programs, two groups of a breakdown, two periods of one
    program): the difference of the estimates, plus or minus the (1 - alpha) quantile of the
    normal part of both errors plus their two Laplace parts (exact, in closed form). Sharing
    respondents (two periods) makes the true sampling variance smaller: conservative. A
    verdict is this interval excluding 0; with several on a page, ``alpha`` is Holm's."""
    one, other = error_of(first, first_scales), error_of(second, second_scales)
    half = quantile(math.sqrt(one.variance + other.variance), (one.laplace, other.laplace), alpha)
    centre = one.mean - other.mean
    return Interval(centre - half, centre + half)


def quantile(sd: float, laplaces: Sequence[float], alpha: float) -> float:
    """The h with P(|N(0, sd^2) + L_1 + ... | > h) = alpha, for independent Laplace L_i of the
    given scales."""

    def beyond(h: float) -> float:
        return 2 * laplace_sum_sf(h, sd, laplaces)

    low, high = 0.0, 1.0
    while beyond(high) > alpha:
        low, high = high, high * 2
    while high - low > 1e-4 * high:
        middle = (low + high) / 2
        if beyond(middle) > alpha:
            low = middle
        else:
            high = middle
    return high


def _edge(test: _Test, inside: float, end: float) -> float:
    """The end of the accepted set from ``inside`` toward ``end``, to STEP, rounded outward."""
    if test.accepts(end):
        return end
    good, bad = inside, end
    while abs(bad - good) > STEP:
        middle = (good + bad) / 2
        if test.accepts(middle):
            good = middle
        else:
            bad = middle
    return bad  # the first mean found rejected: conservative by less than STEP


@dataclass(frozen=True, slots=True)
class _Test:
    noisy_n: int
    noisy_sum: int
    second: float  # the population's mean of c*c, as estimated
    sum_scale: float
    level: float
    values: tuple[int, ...]  # of the count's noise, the likeliest first
    free: tuple[float, ...]  # their weights
    shown: tuple[float, ...]  # their weights given a group of one was shown (below the floor)
    free_left: tuple[float, ...]  # the weight of the values after each
    shown_left: tuple[float, ...]

    @classmethod
    def make(cls, noisy: Noisy, scales: Scales, threshold: int, alpha: float) -> _Test:
        p = math.exp(-1 / scales.count)
        reach = math.ceil(scales.count * math.log(2 / _TAIL)) + 1
        small = threshold > 0 and noisy.n < reading_floor(scales.count, threshold)
        cut = threshold - 1 if small else -reach - 1  # a group of one is shown: Z_n >= cut
        values = tuple(sorted(range(-reach, max(reach, cut + reach) + 1), key=abs))
        free = tuple((1 - p) / (1 + p) * p ** abs(z) for z in values)
        kept = [w if z >= cut else 0.0 for z, w in zip(values, free, strict=True)]
        mass = sum(kept)
        shown = tuple(w / mass for w in kept)
        return cls(
            noisy.n,
            noisy.sum,
            second_moment(noisy, scales),
            scales.sum,
            alpha - ALPHA_COUNT if small else alpha,
            values,
            free,
            shown,
            _left(free),
            _left(shown),
        )

    def accepts(self, theta: float) -> bool:
        """Whether the equal-tailed test keeps ``theta``: both P(T >= t) and P(T <= t) above
        half the level, each under the law of the count's noise (unconditioned, or given that
        a group of one was shown) that makes that tail largest. T = sampling + Laplace -
        theta * Z_n; the likelier tail to fall short is summed first, and each sum stops as
        soon as it is decided (its terms are positive, and the weight left bounds the rest)."""
        t = self.noisy_sum - theta * self.noisy_n
        sd = math.sqrt(max(0.0, self.second - theta * theta) * max(self.noisy_n, 1))
        half, b = self.level / 2, self.sum_scale
        if theta == 0:
            up, low = normal_laplace_sf(t - 0.5, sd, b), normal_laplace_sf(-t - 0.5, sd, b)
            return min(up, low) > half
        upper = (self.free, self.free_left) if theta > 0 else (self.shown, self.shown_left)
        lower = (self.shown, self.shown_left) if theta > 0 else (self.free, self.free_left)
        tails = [(upper, t - 0.5, theta), (lower, -t - 0.5, -theta)]
        if t < 0:  # the lower tail is the one likelier to be small
            tails.reverse()
        return all(
            self._beyond(weights, left, start, shift, sd, half)
            for (weights, left), start, shift in tails
        )

    def _beyond(
        self,
        weights: tuple[float, ...],
        left: tuple[float, ...],
        start: float,
        shift: float,
        sd: float,
        half: float,
    ) -> bool:
        """Whether sum_z w_z P(N + L > start + shift * z) exceeds ``half``."""
        total, b = 0.0, self.sum_scale
        for z, w, rest in zip(self.values, weights, left, strict=True):
            if w:
                total += w * normal_laplace_sf(start + shift * z, sd, b)
                if total > half:
                    return True
            if total + rest <= half:
                return False
        return total > half


def _left(weights: Sequence[float]) -> tuple[float, ...]:
    """For each position, the sum of the weights after it."""
    found, after = [], 0.0
    for w in reversed(weights):
        found.append(after)
        after += w
    return tuple(reversed(found))
