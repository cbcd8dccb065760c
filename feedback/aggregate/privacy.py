"""Differential privacy for releases (../shared/PRIVACY.md), with no I/O.

Exact counts go into a ``Tally`` in the layout of ``feedback.stats.cells``; one survivor changes at
most ``1 + Q`` cells by 1: that L1 sensitivity calibrates the noise.

Noise is OpenDP's discrete Laplace (exact sampling on integers; never floating-point Laplace),
added to the whole vector in one call. A group whose *noisy* ``n`` falls below the threshold is
suppressed: its cells are marked, never shown as zero, and the decision never looks at the
exact count. Shares and their intervals are derived from noisy counts only (post-processing).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import opendp.prelude as dp

from feedback.stats import means
from feedback.stats.cells import SKIPPED, WRITTEN, Layout, PrivacyError, categories, cell_of
from feedback.stats.shares import ALPHA, Interval
from feedback.surveys import IndexName

dp.enable_features("contrib")

MECHANISM = "discrete_laplace"
DEFAULT_THRESHOLD = 11


@dataclass(frozen=True, slots=True)
class Noise:
    """The mechanism of one release: at most ``epsilon`` spent for a given L1 sensitivity, as
    OpenDP's own accounting counts it."""

    epsilon: float | Decimal
    sensitivity: int

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise PrivacyError(f"epsilon must be a positive number; got {self.epsilon}")
        if self.sensitivity < 1:
            raise PrivacyError(f"sensitivity must be at least 1; got {self.sensitivity}")

    @property
    def scale(self) -> float:
        return calibrated_scale(self.sensitivity, _float_at_most(self.epsilon))

    def spent(self) -> float:
        """The privacy loss OpenDP's own accounting gives for this sensitivity: never more
        than ``epsilon``."""
        loss: float = _measurement(self.scale).map(self.sensitivity)
        return float(loss)

    def add(self, counts: Sequence[int], *, signed: bool = False) -> list[int]:
        """Noisy values for the whole vector, in one call: counts, or (``signed``) sums of
        centred contributions, which may be negative."""
        if not signed and any(c < 0 for c in counts):
            raise PrivacyError("counts cannot be negative")
        return [int(v) for v in _measurement(self.scale)(list(counts))]

    def half_width(self, alpha: float = ALPHA) -> float:
        """The half-width that a cell's noise stays within with probability ``1 - alpha``."""
        return float(dp.discrete_laplacian_scale_to_accuracy(scale=self.scale, alpha=alpha))


def _float_at_most(value: float | Decimal) -> float:
    """The largest float not above ``value`` (float(Decimal("1.3")) is a little above 1.3)."""
    near = float(value)
    return math.nextafter(near, 0.0) if Decimal(near) > Decimal(value) else near


@functools.lru_cache(maxsize=256)
def calibrated_scale(sensitivity: int, epsilon: float) -> float:
    """The smallest scale from ``sensitivity / epsilon`` upward whose loss, by OpenDP's own
    (conservatively rounded) accounting, is at most ``epsilon``: s = d / epsilon alone can
    come out a float's width over (0.7000000000000001), and a ledger that rounds up would
    then record more than the plan allowed."""
    scale = sensitivity / epsilon
    for _ in range(1000):
        if _measurement(scale).map(sensitivity) <= epsilon:
            return scale
        scale = math.nextafter(scale, math.inf)
    raise PrivacyError(f"no noise scale spends at most epsilon {epsilon}")


@functools.lru_cache(maxsize=64)
def _measurement(scale: float) -> Any:  # an OpenDP Measurement (the library is untyped)
    space = (dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int))
    return space >> dp.m.then_laplace(scale=scale)


class Tally:
    """Exact counts in the layout. Lives only in the worker's memory during a release.

    ``add`` runs once per opened envelope, so it checks and counts in one pass over a table
    built here: for every question of the survey, each allowed answer's cell within a group
    (0 for an answer that is valid but not released). ``skipped`` cells are not counted one
    by one: a question's skipped count is its group's n minus the answers it got.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._raw = [0] * len(layout)  # skipped cells stay 0 here; see ``counts``
        self._cells: dict[str, dict[object, int]] = {
            q.id: dict.fromkeys(q.allowed(), 0)
            for q in layout.survey.questions
            if q.type != "comment"
        }
        if layout.comment is not None:  # only answers_of gives it, and only when asked
            self._cells[layout.comment] = {WRITTEN: 0}
        offset = 1  # cell 0 of each group is n, never an answer's cell
        self._skipped: list[tuple[int, int]] = []  # (skipped cell, first answer cell) per question
        for question in layout.questions:
            names = categories(question)
            cells = self._cells[question.id]
            for value in cells:
                cells[value] = offset + names.index(cell_of(question, value))
            self._skipped.append((offset + len(names) - 1, offset))
            offset += len(names)
        # An indices layout: after n, each index's count of those who answered it, then each
        # index's sum of their centred contributions, then of their squares (see means).
        k = len(layout.indices)
        self._indices = [
            (
                1 + i,
                1 + k + i,
                1 + 2 * k + i,
                tuple((q.id, q.reverse) for q in layout.survey.items_of(index)),
            )
            for i, index in enumerate(layout.indices)
        ]
        size = layout.cells_per_group()
        self._bases: dict[object, int] = {}  # breakdown answer -> its group's first cell
        if layout.breakdown is not None:
            by = layout.survey.question(layout.breakdown)
            self._bases = {group: i * size for i, group in enumerate(layout.groups)}
            self._bases.update({value: self._bases[str(value)] for value in by.allowed()})

    def add(self, answers: Mapping[str, object]) -> bool:
        """Count one respondent if every answer is one the survey allows (exactly one cell
        per released question, ``skipped`` if absent); otherwise count nothing, return False."""
        hits = []
        cells_of = self._cells
        for question_id, value in answers.items():
            cells = cells_of.get(question_id)
            # JSON gives int, str, float, bool, list, dict or None: only ints and texts are
            # answers (True == 1 and 1.0 == 1 would otherwise find a cell).
            if cells is None or value.__class__ not in _ANSWER_TYPES:
                return False
            cell = cells.get(value, -1)
            if cell < 0:
                return False
            if cell:
                hits.append(cell)
        base = 0
        if self.layout.breakdown is not None:
            base = self._bases[answers.get(self.layout.breakdown, SKIPPED)]
        raw = self._raw
        raw[base] += 1
        for cell in hits:
            raw[base + cell] += 1
        for count, total, squares, items in self._indices:
            points = [
                means.item_points(value, reverse=reverse)
                for question_id, reverse in items
                if (value := answers.get(question_id)).__class__ is int
            ]
            contribution = means.contribution(points)
            if contribution is not None:  # one who answered none of its items is in none
                raw[base + count] += 1
                raw[base + total] += contribution
                raw[base + squares] += contribution * contribution - means.HALF_SQUARE
        return True

    @property
    def raw(self) -> list[int]:
        """The cells as counted, ``skipped`` not yet filled in: what a worker process sends
        back to be merged."""
        return self._raw

    def merge(self, raw: Sequence[int]) -> None:
        self._raw = [a + b for a, b in zip(self._raw, raw, strict=True)]

    @property
    def counts(self) -> list[int]:
        """Every cell, ``skipped`` included: each respondent is in exactly 1 + Q cells."""
        counts = list(self._raw)
        size = self.layout.cells_per_group()
        for base in range(0, len(counts), size):
            for skipped, first in self._skipped:
                counts[base + skipped] = counts[base] - sum(counts[base + first : base + skipped])
        return counts


_ANSWER_TYPES = (int, str)


@dataclass(frozen=True, slots=True)
class Counted:
    """A period's exact tally, with how many submissions it counted and how many it set
    aside (did not open, or not a valid envelope): worker memory only."""

    tally: Tally
    counted: int
    quarantined: int


@dataclass(frozen=True, slots=True)
class GroupRelease:
    group: str
    n: int | None  # None when suppressed
    cells: Mapping[str, Mapping[str, int | None]]  # question -> category -> noisy count

    @property
    def suppressed(self) -> bool:
        return self.n is None


def release(
    tally: Tally, noise: Noise, *, threshold: int = DEFAULT_THRESHOLD
) -> list[GroupRelease]:
    """Noise every cell in one call; suppress groups on their noisy n. The exact counts are
    read once, here, and never returned."""
    if tally.layout.indices:
        raise PrivacyError("an indices layout is released with release_indices")
    if noise.sensitivity != tally.layout.sensitivity:
        raise PrivacyError("the noise was calibrated for another layout")
    noisy = noise.add(tally.counts)
    layout = tally.layout
    size = layout.cells_per_group()
    groups = []
    for index, group in enumerate(layout.groups):
        block = noisy[index * size : (index + 1) * size]
        hidden = block[0] < threshold
        cells: dict[str, dict[str, int | None]] = {}
        offset = 1
        for question in layout.questions:
            names = categories(question)
            values = block[offset : offset + len(names)]
            cells[question.id] = {
                name: (None if hidden else value) for name, value in zip(names, values, strict=True)
            }
            offset += len(names)
        groups.append(GroupRelease(group, None if hidden else block[0], cells))
    return groups


@dataclass(frozen=True, slots=True)
class IndexGroup:
    """One group of an indices release: each index shown, with its noisy count, sum and
    squares; an index whose noisy count is below the threshold is suppressed (absent)."""

    group: str
    shown: Mapping[IndexName, means.Noisy]

    @property
    def suppressed(self) -> bool:
        return not self.shown


@dataclass(frozen=True, slots=True)
class IndicesRelease:
    """The indices of every group, with the noise scales their intervals need."""

    groups: list[IndexGroup]
    scales: means.Scales
    indices: tuple[IndexName, ...]

    def mean(self, group: IndexGroup, index: IndexName) -> float | None:
        shown = group.shown.get(index)
        return None if shown is None else means.estimate(shown)

    def interval(self, group: IndexGroup, index: IndexName, threshold: int) -> Interval | None:
        shown = group.shown.get(index)
        return None if shown is None else means.interval(shown, self.scales, threshold=threshold)


def indices_noise(plan: means.Split) -> tuple[Noise, Noise, Noise | None]:
    """The mechanisms of an indices release: the counts', the sums' and (when the plan gives
    them a share) the squares'."""
    d_count, d_sum, d_squares = means.sensitivities(plan.indices)
    squares = Noise(plan.squares, d_squares) if plan.squares > 0 else None
    return Noise(plan.count, d_count), Noise(plan.sums, d_sum), squares


def release_indices(
    tally: Tally, plan: means.Split, *, threshold: int = DEFAULT_THRESHOLD
) -> IndicesRelease:
    """Noise, for every group and index, the count of those who answered it (one vector:
    a respondent is in one group and each index's count once), the sum of their centred
    contributions (one vector, L1 sensitivity BOUND per index) and of their squares (one
    vector, HALF_SQUARE per index), each at its share of the plan's epsilon; then suppress
    each index of each group on its noisy count. The exact values are read here and never
    returned."""
    layout = tally.layout
    if len(layout.indices) != plan.indices or not layout.indices:
        raise PrivacyError(
            f"the plan splits epsilon for {plan.indices} indices; the layout has "
            f"{len(layout.indices) or 'no'} indices"
        )
    raw, size, k = tally.counts, layout.cells_per_group(), len(layout.indices)
    blocks = [raw[base : base + size] for base in range(0, len(raw), size)]
    counts = [n for block in blocks for n in block[1 : 1 + k]]
    sums = [t for block in blocks for t in block[1 + k : 1 + 2 * k]]
    squares = [q for block in blocks for q in block[1 + 2 * k : 1 + 3 * k]]
    if any(
        abs(t) > means.BOUND * n or abs(q) > means.HALF_SQUARE * n
        for n, t, q in zip(counts, sums, squares, strict=True)
    ):
        raise PrivacyError("a sum is beyond what its respondents could contribute")
    count_noise, sum_noise, squares_noise = indices_noise(plan)
    noisy_n = count_noise.add(counts)
    noisy_sums = sum_noise.add(sums, signed=True)
    noisy_squares = squares_noise.add(squares, signed=True) if squares_noise else None
    groups = []
    for g, name in enumerate(layout.groups):
        shown = {
            index: means.Noisy(
                noisy_n[g * k + i],
                noisy_sums[g * k + i],
                None if noisy_squares is None else noisy_squares[g * k + i],
            )
            for i, index in enumerate(layout.indices)
            if noisy_n[g * k + i] >= threshold
        }
        groups.append(IndexGroup(name, shown))
    scales = means.Scales(
        count_noise.scale,
        sum_noise.scale,
        squares_noise.scale if squares_noise else math.inf,
    )
    return IndicesRelease(groups, scales, layout.indices)
