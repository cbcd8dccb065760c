"""The plan advisor: from the respondents an admin expects in a year and the yearly budget, the
release plan that shows the most that can be read, and what it will be able to show.

Nothing here reads data: the admin states the expected respondents, and every figure is a
plan's accuracy preview (feedback.means for the indices, feedback.shares for the questions).
The plans are tried from the most detailed to the least, and the first whose previews meet
the goals within the budget is chosen: the indices every quarter and each question every
quarter; the indices every quarter and the questions once a year; both once a year; the
indices alone, every quarter, then once a year. Whatever budget the chosen plan does not need
is shared out between its lines in proportion, so that every line is as narrow as it can be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from feedback import means
from feedback.cells import Layout
from feedback.periods import Granularity
from feedback.shares import preview
from feedback.surveys import INDICES, Survey

INDEX_GOAL = 10.0  # points: the widest 95% half-width an index may have and still be planned
DETAIL_GOAL = 15.0  # points: the same for a question's share (PRIVACY.md)
PER_YEAR: dict[Granularity, int] = {"quarter": 4, "year": 1}
PLACES = Decimal("0.000001")
LEAST_BUDGET = Decimal("0.05")  # a year's epsilon below this can show nothing at any size
THRESHOLD = 11


@dataclass(frozen=True, slots=True)
class Proposal:
    """One plan line the advisor proposes."""

    kind: str  # "indices" or "questions"
    granularity: Granularity
    epsilon: Decimal  # per release
    expected_n: int  # respondents per period
    half_width: float  # points, 95%, at expected_n
    questions: tuple[str, ...] = ()

    @property
    def cost(self) -> Decimal:
        return self.epsilon * PER_YEAR[self.granularity]


@dataclass(frozen=True, slots=True)
class Advice:
    respondents: int  # a year, as the admin stated
    budget: Decimal
    lines: tuple[Proposal, ...]
    meets_goal: bool  # False: even the indices once a year are wider than INDEX_GOAL

    def sayings(self) -> list[str]:
        """What the plan will be able to show, in plain words."""
        said = []
        for line in self.lines:
            every = "every quarter" if line.granularity == "quarter" else "once a year"
            if line.kind == "indices":
                names = " and ".join(INDICES.values())
                said.append(
                    f"{names} {every}, each within about \u00b1{round(line.half_width)} "
                    f"points (95%) at about {line.expected_n} respondents a "
                    f"{line.granularity}: a difference of {visible(line.half_width)} points "
                    "between two periods will usually be visible."
                )
            else:
                said.append(
                    f"Each question's share agreeing {every}, within about "
                    f"\u00b1{round(line.half_width)} points (95%)."
                )
        if not any(line.kind == "questions" for line in self.lines):
            said.append(
                f"Each question's share on its own: not enough answers. At {self.respondents} "
                f"respondents a year it would be wider than \u00b1{DETAIL_GOAL:.0f} points, so "
                "the page shows the indices, which pool the questions, instead."
            )
        if not self.meets_goal:
            said.append(
                f"Even once a year the indices are wider than \u00b1{INDEX_GOAL:.0f} points: "
                "consider a larger budget, or pooling with other programs (an "
                "organisation-wide plan line)."
            )
        return said


def visible(half_width: float) -> int:
    """The difference between two periods that the verdict ("higher", "lower") will usually
    see: both intervals, each at 97.5% (about 1.15 times as wide as at 95%), must part."""
    return math.ceil(2 * 1.15 * half_width)


def index_half_width(epsilon: Decimal, n: int, indices: int = len(INDICES)) -> float:
    plan = means.split(epsilon, indices=indices, expected_n=n)
    return means.planned_half_width(plan, n)


def detail_half_width(survey: Survey, questions: Sequence[str], epsilon: Decimal, n: int) -> float:
    found = preview(Layout.plan(survey, questions), float(epsilon), n, THRESHOLD)
    return max(found.share_half_width.values()) * 100


def detail_epsilon(survey: Survey, questions: Sequence[str], n: int) -> Decimal | None:
    """The least epsilon per release (to a thousandth, from 0.05: less is never of use)
    whose preview meets DETAIL_GOAL, if one of at most 10 does."""
    low, high = Decimal("0.05"), Decimal(10)
    if detail_half_width(survey, questions, high, n) > DETAIL_GOAL:
        return None
    while high - low > Decimal("0.001"):
        middle = ((low + high) / 2).quantize(Decimal("0.001"))
        if detail_half_width(survey, questions, middle, n) <= DETAIL_GOAL:
            high = middle
        else:
            low = middle
    return high


def _per_release(budget: Decimal, granularity: Granularity) -> Decimal:
    return (budget / PER_YEAR[granularity]).quantize(PLACES, rounding=ROUND_FLOOR)


def advise(
    survey: Survey, respondents: int, budget: Decimal, questions: Sequence[str] = ()
) -> Advice:
    """The plan for a program of ``respondents`` a year with ``budget`` of epsilon a year.
    ``questions`` are the questions to detail (default: the items of the indices)."""
    if respondents < 1:
        raise ValueError("expect at least 1 respondent a year")
    if not LEAST_BUDGET <= budget <= Decimal(10):
        raise ValueError(
            f"the yearly budget to advise on is from {LEAST_BUDGET} to 10; got {budget}"
        )
    chosen = tuple(questions) or tuple(q.id for index in INDICES for q in survey.items_of(index))
    options: list[tuple[Granularity, Granularity | None]] = [
        ("quarter", "quarter"),
        ("quarter", "year"),
        ("year", "year"),
        ("quarter", None),
        ("year", None),
    ]
    for index_every, detail_every in options:
        index_n = max(1, respondents // PER_YEAR[index_every])
        detail: tuple[Granularity, int, Decimal] | None = None
        left = budget
        if detail_every is not None:
            detail_n = max(1, respondents // PER_YEAR[detail_every])
            least = detail_epsilon(survey, chosen, detail_n)
            if least is None or least * PER_YEAR[detail_every] >= budget - LEAST_BUDGET:
                continue
            detail = (detail_every, detail_n, least)
            left -= least * PER_YEAR[detail_every]
        index_eps = _per_release(left, index_every)
        width = index_half_width(index_eps, index_n)
        if width > INDEX_GOAL:
            continue
        index = Proposal("indices", index_every, index_eps, index_n, width)
        if detail is None:
            return Advice(respondents, budget, (index,), meets_goal=True)
        return Advice(respondents, budget, _share_out(survey, chosen, budget, index, detail), True)
    yearly = _per_release(budget, "year")
    width = index_half_width(yearly, respondents)
    only = Proposal("indices", "year", yearly, respondents, width)
    return Advice(respondents, budget, (only,), meets_goal=False)


def _share_out(
    survey: Survey,
    questions: tuple[str, ...],
    budget: Decimal,
    index: Proposal,
    detail: tuple[Granularity, int, Decimal],
) -> tuple[Proposal, Proposal]:
    """Both lines of a plan that meets both goals, with the budget the goals do not need
    shared between them in proportion to what each needs. An index's half-width falls about
    as 1 / epsilon, which estimates what it needs; the shared plan is checked, and kept only
    if the index still meets its goal."""
    every, n, least_detail = detail
    least_index = index.epsilon * Decimal(index.half_width / INDEX_GOAL)
    need = least_index * PER_YEAR[index.granularity] + least_detail * PER_YEAR[every]
    factor = max(Decimal(1), budget / need)
    index_eps = _per_release(least_index * PER_YEAR[index.granularity] * factor, index.granularity)
    detail_eps = _per_release(least_detail * PER_YEAR[every] * factor, every)
    width = index_half_width(index_eps, index.expected_n)
    if width > INDEX_GOAL:
        index_eps, width, detail_eps = index.epsilon, index.half_width, least_detail
    return (
        Proposal("indices", index.granularity, index_eps, index.expected_n, width),
        Proposal(
            "questions",
            every,
            detail_eps,
            n,
            detail_half_width(survey, questions, detail_eps, n),
            questions,
        ),
    )


def shortfall(layout: Layout, epsilon: Decimal, n: int, split: means.Split | None) -> str | None:
    """Why a planned line will not meet the goals at ``n`` respondents per group and period
    (its accuracy preview), or None when it will: a line that will not is planned only when
    the admin confirms it."""
    if layout.indices:
        if split is None:
            raise ValueError("an indices line needs its split of epsilon")
        width = means.planned_half_width(split, n)
        if width > INDEX_GOAL:
            return (
                f"at {n} respondents each index would be within about \u00b1{width:.0f} points "
                f"(95%), wider than the \u00b1{INDEX_GOAL:.0f} that can be read"
            )
        return None
    shown = preview(layout, float(epsilon), n, THRESHOLD)
    question, widest = max(shown.share_half_width.items(), key=lambda pair: pair[1])
    if widest * 100 > DETAIL_GOAL:
        return (
            f"at {n} respondents per group the share of {question!r} would be within about "
            f"\u00b1{widest * 100:.0f} points (95%), wider than \u00b1{DETAIL_GOAL:.0f}: the "
            "page would say \u201cnot enough answers to show this yet\u201d"
        )
    return None
