"""Differential privacy for releases (../shared/PRIVACY.md), with no I/O.

A release is a fixed layout of integer cells that comes from the survey and the release plan,
never from the data: for each group (the whole program, or each answer of one demographic
question), a respondent count ``n`` and, for each question, a count per answer category plus
``skipped``. Each respondent adds exactly 1 to ``n`` and 1 cell per question, so one survivor
changes at most ``1 + Q`` cells by 1: that L1 sensitivity calibrates the noise.

Noise is OpenDP's discrete Laplace (exact sampling on integers; never floating-point Laplace),
added to the whole vector in one call. A group whose *noisy* ``n`` falls below the threshold is
suppressed: its cells are marked, never shown as zero, and the decision never looks at the
exact count. Shares and their intervals are derived from noisy counts only (post-processing).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import opendp.prelude as dp

from feedback.errors import FeedbackError
from feedback.surveys import PREFER_NOT, Question, Survey

dp.enable_features("contrib")

MECHANISM = "discrete_laplace"
ALPHA = 0.05  # intervals are 95%
DEFAULT_THRESHOLD = 11
SKIPPED = "skipped"
SUPPRESSED = "S"


class PrivacyError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Noise:
    """The mechanism of one release: epsilon spent for a given L1 sensitivity."""

    epsilon: float
    sensitivity: int

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise PrivacyError(f"epsilon must be a positive number; got {self.epsilon}")
        if self.sensitivity < 1:
            raise PrivacyError(f"sensitivity must be at least 1; got {self.sensitivity}")

    @property
    def scale(self) -> float:
        return self.sensitivity / self.epsilon

    def spent(self) -> float:
        """The privacy loss OpenDP's own accounting gives for this sensitivity."""
        loss: float = _measurement(self.scale).map(self.sensitivity)
        return float(loss)

    def add(self, counts: Sequence[int]) -> list[int]:
        """Noisy counts for the whole vector, in one call."""
        if any(c < 0 for c in counts):
            raise PrivacyError("counts cannot be negative")
        return [int(v) for v in _measurement(self.scale)(list(counts))]

    def half_width(self, alpha: float = ALPHA) -> float:
        """The half-width that a cell's noise stays within with probability ``1 - alpha``."""
        return float(dp.discrete_laplacian_scale_to_accuracy(scale=self.scale, alpha=alpha))


@functools.lru_cache(maxsize=64)
def _measurement(scale: float) -> Any:  # an OpenDP Measurement (the library is untyped)
    space = (dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int))
    return space >> dp.m.then_laplace(scale=scale)


def categories(question: Question) -> tuple[str, ...]:
    """A question's cells, in a fixed order: every allowed answer, then ``skipped``."""
    if question.type == "likert5":
        values: tuple[str, ...] = ("1", "2", "3", "4", "5", PREFER_NOT)
    else:
        values = tuple(str(v) for v in sorted(question.allowed(), key=str))
        if question.type == "single_choice":
            values = tuple(option.id for option in question.options)
    return (*values, SKIPPED)


@dataclass(frozen=True, slots=True)
class Layout:
    """Which cells a release has: fixed by the survey and the plan, never by the data."""

    survey: Survey = field(repr=False, compare=False)  # what every envelope is checked against
    questions: tuple[Question, ...]
    groups: tuple[str, ...]  # ("all",) or the breakdown question's categories
    breakdown: str | None = None

    @classmethod
    def plan(
        cls, survey: Survey, question_ids: Sequence[str], breakdown: str | None = None
    ) -> Layout:
        chosen = []
        for question_id in question_ids:
            question = survey.question(question_id)
            if question.type == "comment":
                raise PrivacyError("free text is never released")
            chosen.append(question)
        if breakdown is None:
            return cls(survey, tuple(chosen), ("all",))
        by = survey.question(breakdown)
        if by.type != "single_choice":
            # A demographic group (the equity view) or the time in program (outcomes over time).
            raise PrivacyError(f"{breakdown!r} is not a single-choice question to group by")
        if breakdown in question_ids:
            raise PrivacyError("the breakdown question is not also a released question")
        return cls(survey, tuple(chosen), categories(by), breakdown)

    def question_ids(self) -> list[str]:
        return [q.id for q in self.questions]

    @property
    def sensitivity(self) -> int:
        """Cells one respondent touches: n, and one per question (in exactly one group)."""
        return 1 + len(self.questions)

    def cells_per_group(self) -> int:
        return 1 + sum(len(categories(q)) for q in self.questions)

    def __len__(self) -> int:
        return len(self.groups) * self.cells_per_group()


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
        offset = 1  # cell 0 of each group is n, never an answer's cell
        self._skipped: list[tuple[int, int]] = []  # (skipped cell, first answer cell) per question
        for question in layout.questions:
            names = categories(question)
            cells = self._cells[question.id]
            for value in cells:
                cells[value] = offset + names.index(str(value))
            self._skipped.append((offset + len(names) - 1, offset))
            offset += len(names)
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
class Interval:
    low: float
    high: float


def share_interval(
    numerator: int, rest: int, *, cells_in_numerator: int, cells_in_rest: int, noise: Noise
) -> tuple[float, Interval]:
    """A share numerator / (numerator + rest) of noisy counts (each a sum of that many noisy
    cells), with an interval that covers the exact share with probability at least 1 - ALPHA
    over the noise: each sum's noise is within its bound with probability 1 - ALPHA / 2 (the
    exact distribution of a sum of discrete Laplace draws; see ``noise_bound``). It covers
    noise only, not sampling or non-response."""
    hx = noise_bound(noise.scale, cells_in_numerator, ALPHA / 2)
    hr = noise_bound(noise.scale, cells_in_rest, ALPHA / 2)
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


def headline(question: Question) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The cells of a question's headline share, and of the rest of the answers it is a share
    of: agreeing (4 or 5) among the scale's answers, "yes" among yes and no, the first option
    among all options. "Prefer not to say" and skipped answers are in neither."""
    if question.type == "likert5":
        return ("4", "5"), ("1", "2", "3")
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
    cell_half_width: float  # 95%, of any one noisy count
    share_half_width: Mapping[str, float]  # question -> expected +/- of its headline share
    suppressed_chance: float  # that a group of exactly n is suppressed


def preview(layout: Layout, epsilon: float, n: int, threshold: int) -> Preview:
    """Expected accuracy at ``n`` respondents per group: each headline share's interval
    half-width at a true share of one half (the widest), for a group where everyone answered."""
    if n < 1:
        raise PrivacyError("preview at 1 respondent or more")
    noise = Noise(epsilon, layout.sensitivity)
    widths = {}
    for question in layout.questions:
        numerator, rest = headline(question)
        _, interval = share_interval(
            n // 2,
            n - n // 2,
            cells_in_numerator=len(numerator),
            cells_in_rest=len(rest),
            noise=noise,
        )
        widths[question.id] = (interval.high - interval.low) / 2
    return Preview(epsilon, n, noise.half_width(), widths, suppressed_chance(noise, n, threshold))


def suppressed_chance(noise: Noise, n: int, threshold: int) -> float:
    """P(n + Z < threshold) for the discrete Laplace Z of ``noise`` (closed form:
    P(Z = z) = (1 - a) / (1 + a) * a^|z|, a = exp(-1 / scale)); analysis, not sampling."""
    a = math.exp(-1 / noise.scale)
    below = threshold - 1 - n  # suppressed when Z <= below
    if below < 0:
        return a ** (-below) / (1 + a)
    return 1 - a ** (below + 1) / (1 + a)
