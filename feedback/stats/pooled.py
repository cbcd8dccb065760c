"""Figures pooled over several releases (a network's, from its members' releases): an index's
mean and a question's headline share, each with an interval that covers sampling and noise.
Post-processing of released numbers: no budget, nothing read but the releases.

The pooled respondents are taken as one sample of the people the pooled releases' programs
serve, as a release's respondents are of its program's (docs/privacy.md, Networks).

An index pools the noisy counts ``n_r`` and centred sums ``s_r`` of the groups r it is given;
its estimate is ``theta = sum(s_r) / sum(n_r)``, and the error of the pooled centred total at
``theta`` is, as for one group (feedback.stats.means):

    sum(s_r) - theta * sum(n_r) = sum_i (c_i - theta) + sum_r Z_sum_r - theta * sum_r Z_n_r

Its sampling part is taken as normal with variance ``sum_r n_r * (var_r + (mu_r - theta)**2)``:
each group's spread (its mean square read from its noisy squares as ``means.second_moment``
reads it, the Bhatia-Davis bound where the release has no squares, less its mean's square) plus
its distance from the pooled mean, so that members whose figures differ widen the interval
rather than narrow it (it is ``N (M - theta**2)`` for the pooled mean square M). The counts'
noise adds ``theta**2`` times their discrete Laplace variances to the normal part; the sums'
noise is a sum of Laplace terms, the three largest taken exactly and the others folded into the
normal part with their variance raised by ``shares.FOLDED``. The interval is the estimate plus
or minus the exact 97.5% point of that normal-plus-Laplace law (``means.quantile``), with half
a unit of slack on the total for discreteness.

A share pools the noisy counts of its headline cells and of the rest over the groups it is
given and inverts the same test as ``shares.share_interval`` (binomial sampling at the
candidate share, each noisy cell a Laplace of its own release's scale): for one group it is
that interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from feedback.stats.means import (
    BOUND,
    MIDDLE,
    Noisy,
    Scales,
    discrete_variance,
    quantile,
    second_moment,
)
from feedback.stats.shares import ALPHA, fold_laplaces, laplace_sum_sf, pooled_share_interval


@dataclass(frozen=True, slots=True)
class Pooled:
    """A pooled figure on 0 to 100 (unrounded), its interval, and the pooled noisy count."""

    value: float
    low: float
    high: float
    respondents: int
    sd: float = 0.0  # an index's error, in points: its normal part's sd...
    laplaces: tuple[float, ...] = ()  # ...and its Laplace parts' scales

    def above(self, median: float) -> float:
        """The probability that the mean of the people sampled is above ``median``, by the
        law of the estimate's error (an index's; symmetric, so the truth lies above the
        median when the error is below the estimate's distance from it)."""
        return 1.0 - laplace_sum_sf(self.value - median, self.sd, self.laplaces)


def _clamp(theta: float) -> float:
    return min(float(BOUND), max(-float(BOUND), theta))


def pooled_mean(groups: Sequence[tuple[Noisy, Scales]], alpha: float = ALPHA) -> Pooled | None:
    """An index's mean (0 to 100) over the groups of releases given, each its noisy cells and
    its release's scales; None when their noisy counts add up to less than one."""
    total = sum(noisy.n for noisy, _ in groups)
    if total < 1:
        return None
    theta = _clamp(sum(noisy.sum for noisy, _ in groups) / total)
    sampling = counts = 0.0
    for noisy, scales in groups:
        n = max(noisy.n, 0)
        mu = _clamp(noisy.sum / max(noisy.n, 1))
        spread = max(second_moment(noisy, scales), mu * mu) - mu * mu
        sampling += n * (spread + (mu - theta) ** 2)
        counts += discrete_variance(scales.count)
    folded, laplaces = fold_laplaces([scales.sum for _, scales in groups])
    sd = math.sqrt(sampling + theta * theta * counts + folded)
    half = (quantile(sd, laplaces, alpha) + 0.5) / total
    value = MIDDLE + theta
    return Pooled(
        value,
        max(0.0, value - half),
        min(100.0, value + half),
        total,
        sd / total,
        tuple(b / total for b in laplaces),
    )


@dataclass(frozen=True, slots=True)
class Counted:
    """A question's headline cells in one group of a release: the noisy counts of the
    headline and of the rest, how many noisy cells each adds up, and the release's scale."""

    headline: int
    rest: int
    headline_cells: int
    rest_cells: int
    scale: float


def pooled_share(groups: Sequence[Counted], alpha: float = ALPHA) -> Pooled | None:
    """A headline share, in percent, over the groups given; None when the noisy counts add up
    to less than one."""
    numerator = sum(g.headline for g in groups)
    total = numerator + sum(g.rest for g in groups)
    if total < 1:
        return None
    share, found = pooled_share_interval(
        numerator,
        total - numerator,
        tuple((g.headline_cells, g.rest_cells, g.scale) for g in groups),
        alpha,
    )
    return Pooled(100 * (share or 0.0), 100 * found.low, 100 * found.high, total)
