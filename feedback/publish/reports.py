"""Reading releases for people: headline shares with their intervals, per group, from the
stored noisy cells only. Nothing here reads submissions or keys, and nothing here is exact:
every number is a release's noisy count or derived from them (post-processing).

Suppressed groups are reported as suppressed, never as zero. A breakdown release's overall
figures are the sums of the groups it shows (PRIVACY.md); the groups it suppressed are left
out of them, and the page says so.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from feedback.db import Connection
from feedback.stats import means
from feedback.stats.cells import SUPPRESSED, WRITTEN
from feedback.stats.periods import Period
from feedback.stats.shares import ALPHA, headline, noise_bound, share_interval
from feedback.surveys import INDICES, IndexName, Question, Survey, from_json

EQUITY = ("gender", "age_band", "exploitation")
TIME_IN_PROGRAM = "time_in_program"
TREND_PERIODS = 12  # a year of months, three of quarters


@dataclass(frozen=True, slots=True)
class Share:
    question: Question
    group: str
    value: float | None  # None: suppressed, or nobody answered on the scale
    low: float | None
    high: float | None
    suppressed: bool


@dataclass(frozen=True, slots=True)
class Count:
    """A noisy count with its 95% interval (noise only), none of them below 0."""

    value: int
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class IndexValue:
    """An index's mean on 0 to 100 in one group of an indices release, with its interval."""

    index: IndexName
    group: str
    value: float | None  # None: suppressed, or the noisy count is below one
    low: float | None
    high: float | None
    suppressed: bool

    @property
    def name(self) -> str:
        return INDICES[self.index]


@dataclass(frozen=True, slots=True)
class Release:
    id: uuid.UUID
    kind: str  # "questions" or "indices"
    period: Period
    breakdown: str | None
    epsilon: Decimal
    noise_scale: Decimal
    threshold: int
    cells: dict[str, Any]
    metadata: dict[str, Any]
    survey: Survey
    created_on: dt.date
    ns: tuple[int | str, ...] = ()  # each group's noisy n, or "S": read even without the cells
    mechanism: str = "discrete_laplace"

    @property
    def groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.cells["groups"]
        return groups

    @property
    def questions(self) -> list[Question]:
        if self.kind != "questions" or not self.groups:
            return []
        return [self.survey.question(q) for q in self.groups[0]["questions"]]

    @property
    def indices(self) -> list[IndexName]:
        """The indices an indices release holds, in their fixed order."""
        if self.kind != "indices":
            return []
        return [i for i in INDICES if self.survey.items_of(i)]

    def items(self, index: IndexName) -> list[Question]:
        """The items an index of this release is the mean of (its survey version's)."""
        return list(self.survey.items_of(index))

    def index(self, index: IndexName, group: str = "all", alpha: float = ALPHA) -> IndexValue:
        """An index in one group, with its 1 - alpha interval on the mean of the people the
        group's respondents are a sample of (sampling and noise; see feedback.stats.means)."""
        noisy = self.noisy(index, group)
        if noisy is None:
            return IndexValue(index, group, None, None, None, suppressed=True)
        value = means.estimate(noisy)
        if value is None:
            return IndexValue(index, group, None, None, None, suppressed=False)
        found = means.interval(noisy, self.scales, threshold=self.threshold, alpha=alpha)
        return IndexValue(index, group, value, found.low, found.high, suppressed=False)

    def noisy(self, index: IndexName, group: str = "all") -> means.Noisy | None:
        """An index's released cells in one group; None when suppressed."""
        return means.stored_group(self.cells, group).get(index)

    @property
    def scales(self) -> means.Scales:
        return means.stored_scales(self.cells)

    def shown(self) -> list[dict[str, Any]]:
        return [g for g in self.groups if g["n"] != SUPPRESSED]

    def n(self) -> int | None:
        """Respondents (noisy): the sum over the groups shown; None if all are suppressed."""
        shown = [n for n in self.ns if isinstance(n, int)]
        return sum(shown) if shown else None

    @property
    def half_width(self) -> int:
        """95% noise half-width of any one cell."""
        return noise_bound(float(self.noise_scale), 1, ALPHA)

    def comments(self) -> Count | None:
        """How many wrote a comment (noisy, over the groups shown) with its 95% interval, if
        the release counts them; never below 0."""
        question = next((q for q in self.questions if q.type == "comment"), None)
        shown = self.shown()
        if question is None or not shown:
            return None
        written = sum(g["questions"][question.id][WRITTEN] for g in shown)
        bound = noise_bound(float(self.noise_scale), len(shown), ALPHA)
        return Count(max(0, written), max(0, written - bound), max(0, written + bound))

    def share(self, question_id: str, group: str | None = None) -> Share:
        """The headline share of a question in one group, or over the groups shown."""
        question = self.survey.question(question_id)
        chosen = [g for g in self.groups if group is None or g["group"] == group]
        shown = [g for g in chosen if g["n"] != SUPPRESSED]
        if not shown:
            return Share(question, group or "all", None, None, None, suppressed=True)
        agree, rest = headline(question, shown[0]["questions"][question_id])
        numerator = sum(g["questions"][question_id][c] for g in shown for c in agree)
        remainder = sum(g["questions"][question_id][c] for g in shown for c in rest)
        if numerator + remainder <= 0:
            return Share(question, group or "all", None, None, None, suppressed=False)
        value, interval = share_interval(
            numerator,
            remainder,
            cells_in_numerator=len(agree) * len(shown),
            cells_in_rest=len(rest) * len(shown),
            scale=float(self.noise_scale),
        )
        return Share(question, group or "all", value, interval.low, interval.high, False)


async def program_releases(
    conn: Connection,
    organisation_id: uuid.UUID,
    program_id: uuid.UUID | None,
    *,
    cells: bool = True,
) -> list[Release]:
    """Every release of a program (of the whole organisation when None), oldest period first;
    without their cells (which a stored view of the page does not need) unless ``cells``."""
    rows = await conn.fetch(
        """
        SELECT id, kind, survey_id, granularity, period_start, breakdown, epsilon,
               noise_scale, threshold, mechanism, CASE WHEN $3 THEN cells ELSE '{}' END AS cells,
               metadata, created_on,
               (SELECT jsonb_agg(g -> 'n') FROM jsonb_array_elements(cells -> 'groups') g) AS ns
          FROM releases
         WHERE organisation_id = $1 AND program_id IS NOT DISTINCT FROM $2
         ORDER BY period_start, kind, breakdown NULLS FIRST
        """,
        organisation_id,
        program_id,
        cells,
    )
    surveys = {
        row["id"]: from_json(row["definition"])
        for row in await conn.fetch(
            "SELECT id, definition FROM surveys WHERE id = ANY($1::uuid[])",
            list({row["survey_id"] for row in rows}),
        )
    }
    return [
        Release(
            id=row["id"],
            kind=row["kind"],
            period=Period.of(row["granularity"], row["period_start"]),
            breakdown=row["breakdown"],
            epsilon=row["epsilon"],
            noise_scale=row["noise_scale"],
            threshold=row["threshold"],
            cells=row["cells"],
            metadata=published_metadata(row["metadata"]),
            survey=surveys[row["survey_id"]],
            created_on=row["created_on"],
            ns=tuple(row["ns"] or ()),
            mechanism=row["mechanism"],
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Report:
    """What the dashboard shows for one program and period: the indices first (over time and
    by group), then the questions' detail. Each list holds releases of one kind."""

    period: Period
    periods: list[Period]  # every period with a release, for the selector
    overall: Release | None  # the questions, overall
    previous: Release | None
    trend: list[Release]  # the latest overall releases of this granularity up to the period
    equity: list[Release]
    by_time: Release | None
    indices: Release | None = None  # the indices, overall
    indices_trend: tuple[Release, ...] = ()
    indices_groups: tuple[Release, ...] = ()  # the indices by gender, time in program...
    detail_periods: tuple[Period, ...] = ()  # the periods whose questions were released

    @property
    def main(self) -> Release | None:
        """The release the page's method section describes: the indices' if there is one, else
        the questions', else (a period released only by group) the first by group."""
        by_group = (*self.indices_groups, *self.equity, self.by_time)
        return self.indices or self.overall or next((r for r in by_group if r), None)

    def releases(self) -> list[Release]:
        """Every release the page reads."""
        found = [
            self.overall,
            self.previous,
            *self.trend,
            *self.equity,
            self.by_time,
            self.indices,
            *self.indices_trend,
            *self.indices_groups,
        ]
        return list({r.id: r for r in found if r is not None}.values())


def report(releases: Sequence[Release], period: Period | None) -> Report | None:
    """The report for ``period`` (default: the latest with a release of any kind)."""
    questions = {r.period: r for r in releases if r.breakdown is None and r.kind == "questions"}
    indices = {r.period: r for r in releases if r.breakdown is None and r.kind == "indices"}
    periods = sorted({r.period for r in releases}, key=lambda p: (p.start, p.granularity))
    if not periods:
        return None
    chosen = period if period is not None else periods[-1]

    def up_to(overall: dict[Period, Release]) -> list[Release]:
        same = sorted(
            (p for p in overall if p.granularity == chosen.granularity and p.start <= chosen.start),
            key=lambda p: p.start,
        )
        return [overall[p] for p in same][-TREND_PERIODS:]

    trend = up_to(questions)
    before = next((r for r in trend if r.period.end == chosen.start), None)
    here = [r for r in releases if r.period == chosen and r.breakdown is not None]
    return Report(
        period=chosen,
        periods=periods,
        overall=questions.get(chosen),
        previous=before,  # the period just before, if it has a release
        trend=trend,
        equity=[r for r in here if r.kind == "questions" and r.breakdown in EQUITY],
        by_time=next(
            (r for r in here if r.kind == "questions" and r.breakdown == TIME_IN_PROGRAM), None
        ),
        indices=indices.get(chosen),
        indices_trend=tuple(up_to(indices)),
        indices_groups=tuple(r for r in here if r.kind == "indices"),
        detail_periods=tuple(sorted(questions, key=lambda p: (p.start, p.granularity))),
    )


def change(now: Release, before: Release, index: IndexName) -> str:
    """Whether an index is higher or lower than in the previous period, or "can't tell": from
    an interval on the difference that covers it with probability 1 - ALPHA (each period's at
    1 - ALPHA / 2; the two releases' noise is independent)."""
    a, b = now.index(index, alpha=ALPHA / 2), before.index(index, alpha=ALPHA / 2)
    if None in (a.low, a.high, b.low, b.high):
        return "can't tell"
    if a.low > b.high:  # type: ignore[operator]
        return "higher"
    if a.high < b.low:  # type: ignore[operator]
        return "lower"
    return "can't tell"


# What a release's metadata may show: definitions only. Releases made before 0013 also hold
# an exact channel mix and quarantine count, which are never shown.
PUBLISHED_METADATA = ("privacy_unit", "note", "composition")


def published_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: metadata[key] for key in PUBLISHED_METADATA if key in metadata}


def rounded(n: int | None) -> int | None:
    """Respondent counts are shown to the nearest ten (PRIVACY.md)."""
    return None if n is None else max(0, round(n, -1))
