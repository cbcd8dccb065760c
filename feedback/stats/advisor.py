"""The plan advisor: from the respondents an admin expects in a year and the yearly budget, the
release plan that shows the most that can be read, and what it will be able to show.

Nothing here reads data: the admin states the expected respondents, and every figure is a
plan's accuracy preview (``means`` for the indices, ``shares`` for the questions).
The plans are tried from the most detailed to the least, and the first whose previews meet
the goals within the budget is chosen: the indices as often as they can be read (every
quarter, then every half-year, then once a year), each with the questions as often as they
can be read beside them; then the indices alone, every quarter, half-year, then year.
Whatever budget the chosen plan does not need is shared out between its lines in proportion,
so that every line is as narrow as it can be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from feedback.stats import means
from feedback.stats.cells import Layout
from feedback.stats.periods import NAMES, PER_YEAR, Granularity
from feedback.stats.shares import preview
from feedback.surveys import INDICES, Survey

# points: the widest 95% half-width (sampling and noise) an index may have and still be
# planned: a 30-point interval is where the page calls a figure too uncertain to read.
INDEX_GOAL = 15.0
DETAIL_GOAL = 15.0  # points: the same for a question's share (PRIVACY.md)
OFTEN: dict[Granularity, str] = {
    "month": "every month",
    "quarter": "every quarter",
    "half": "every half-year",
    "year": "once a year",
}
# (indices, questions): from the most detailed plan to the least.
OPTIONS: tuple[tuple[Granularity, Granularity | None], ...] = (
    ("quarter", "quarter"),
    ("quarter", "half"),
    ("quarter", "year"),
    ("half", "half"),
    ("half", "year"),
    ("year", "year"),
    ("quarter", None),
    ("half", None),
    ("year", None),
)
PLACES = Decimal("0.000001")
MOST_RESPONDENTS = 1_000_000
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
    detail_possible: bool = False  # the questions could be shown yearly with a larger budget

    def sayings(self) -> list[str]:
        """What the plan will be able to show, in plain words."""
        said: list[str] = []
        for line in self.lines:
            every = OFTEN[line.granularity]
            people = _people(line.expected_n)
            if line.kind == "indices" and line.half_width > INDEX_GOAL:
                said.append(
                    f"{' and '.join(INDICES.values())} {every}: at about {people} a "
                    f"{NAMES[line.granularity]} each would be within "
                    f"{_about(line.half_width)} (95%), too uncertain to read."
                )
            elif line.kind == "indices":
                names = " and ".join(INDICES.values())
                said.append(
                    f"{names} {every}, each within {_about(line.half_width)} (95%) at "
                    f"about {people} a {NAMES[line.granularity]}: a difference of "
                    f"{_points(visible(line.half_width))} between two periods will usually "
                    "be seen (about 4 times in 5 for one comparison; a page of many "
                    "comparisons needs a little more)."
                )
            else:
                said.append(
                    f"Each question's share agreeing {every}, within {_about(line.half_width)}"
                    " (95%)."
                )
        if not any(line.kind == "questions" for line in self.lines):
            limit = (
                f"at epsilon {self.budget} a year"
                if self.detail_possible
                else f"at {_people(self.respondents)} a year"
            )
            said.append(
                f"Each question's share on its own: not enough to show. {limit.capitalize()} "
                f"it would be wider than \u00b1{DETAIL_GOAL:.0f} points, so the page shows "
                "the indices, which pool the questions, instead."
            )
        if not self.meets_goal:
            said.append(
                f"Even once a year the indices are wider than \u00b1{INDEX_GOAL:.0f} points: "
                "consider a larger budget, or pooling with other programs (an "
                "organisation-wide plan line)."
            )
        return said


def _people(n: int) -> str:
    return "1 respondent" if n == 1 else f"{n} respondents"


def _points(value: float) -> str:
    return "1 point" if round(value) == 1 else f"{round(value)} points"


def _about(half_width: float) -> str:
    """A planned half-width in words: "\u00b18 points", or "less than a point"."""
    return "less than a point" if half_width < 0.5 else f"about \u00b1{_points(half_width)}"


def visible(half_width: float) -> int:
    """The difference between two periods that the verdict ("higher", "lower") sees about
    four times in five at the 5% level: the interval of the difference has about the square
    root of 2 times one period's half-width, and the difference must pass it with the 80th
    percentile of its error to spare: (1.96 + 0.84) * sqrt(2) / 1.96, about 2 half-widths
    (make bench measures detect_10_points_300 through the page's own verdicts)."""
    return math.ceil(2.02 * half_width)


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
    if not 1 <= respondents <= MOST_RESPONDENTS:
        raise ValueError(f"expect from 1 to {MOST_RESPONDENTS:,} respondents a year")
    if not LEAST_BUDGET <= budget <= Decimal(10):
        raise ValueError(
            f"the yearly budget to advise on is from {LEAST_BUDGET} to 10; got {budget}"
        )
    chosen = tuple(questions) or tuple(q.id for index in INDICES for q in survey.items_of(index))
    least_by_n: dict[int, Decimal | None] = {}

    def least_detail(n: int) -> Decimal | None:
        if n not in least_by_n:
            least_by_n[n] = detail_epsilon(survey, chosen, n)
        return least_by_n[n]

    possible = least_detail(respondents) is not None
    for index_every, detail_every in OPTIONS:
        index_n = max(1, respondents // PER_YEAR[index_every])
        detail: tuple[Granularity, int, Decimal] | None = None
        left = budget
        if detail_every is not None:
            detail_n = max(1, respondents // PER_YEAR[detail_every])
            least = least_detail(detail_n)
            if least is None or least * PER_YEAR[detail_every] >= budget - LEAST_BUDGET:
                continue
            detail = (detail_every, detail_n, least)
            left -= least * PER_YEAR[detail_every]
        index_eps = _per_release(left, index_every)
        if index_eps < means.LEAST_EPSILON:
            continue
        width = index_half_width(index_eps, index_n)
        if width > INDEX_GOAL:
            continue
        index = Proposal("indices", index_every, index_eps, index_n, width)
        if detail is None:
            return Advice(respondents, budget, (index,), True, possible)
        return Advice(respondents, budget, _share_out(survey, chosen, budget, index, detail), True)
    yearly = _per_release(budget, "year")
    width = index_half_width(yearly, respondents)
    only = Proposal("indices", "year", yearly, respondents, width)
    return Advice(respondents, budget, (only,), False, possible)


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
    # At least a tenth per release: at large sizes the estimate would leave the indices a
    # sliver that is costly to read and easily beaten by the questions' share.
    least_index = max(Decimal("0.1"), index.epsilon * Decimal(index.half_width / INDEX_GOAL))
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
    if not shown.share_half_width:  # only a count (of comments written): no share to read
        return None
    question, widest = max(shown.share_half_width.items(), key=lambda pair: pair[1])
    if widest * 100 > DETAIL_GOAL:
        return (
            f"at {n} respondents per group the share of {question!r} would be within about "
            f"\u00b1{widest * 100:.0f} points (95%), wider than \u00b1{DETAIL_GOAL:.0f}: the "
            "page would say \u201cnot enough answers to show this yet\u201d"
        )
    return None


def check_affordable(advice: Advice, left: Decimal) -> None:
    """Refuse to plan an advice whose lines together cost more than is left to plan, before
    any is planned: all of it or none."""
    need = sum((line.cost for line in advice.lines), Decimal(0))
    if need > left:
        raise ValueError(
            f"the advised lines need epsilon {need} a year, but only {left} is left to plan: "
            f"ask for advice within {left}"
        )
