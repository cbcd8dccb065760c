"""Reading releases for people: headline shares with their intervals, per group, from the
stored noisy cells only. Nothing here reads submissions or keys, and nothing here is exact:
every number is a release's noisy count or derived from them (post-processing).

Suppressed groups are reported as suppressed, never as zero. A breakdown release's overall
figures are the sums of the groups it shows (PRIVACY.md); the groups it suppressed are left
out of them, and the page says so.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from feedback.db import Connection
from feedback.stats import means
from feedback.stats.cells import SUPPRESSED, WRITTEN
from feedback.stats.periods import GRANULARITIES, PER_YEAR, Period
from feedback.stats.shares import ALPHA, headline, noise_bound, share_interval
from feedback.surveys import INDICES, IndexName, Question, Survey, from_json

EQUITY = ("gender", "age_band", "exploitation")
TIME_IN_PROGRAM = "time_in_program"
TREND_PERIODS = 12  # a year of months, three of quarters
READABLE = 30  # points: a figure whose shown interval is wider is too uncertain to read
# Breakdowns in plain words, for headings and legends ("Treatment by gender").
BY = {
    "gender": "gender",
    "age_band": "age",
    "exploitation": "kind of exploitation",
    "time_in_program": "time in program",
}


@dataclass(frozen=True, slots=True)
class Share:
    question: Question
    group: str
    value: float | None  # None: suppressed, or nobody answered on the scale
    low: float | None
    high: float | None
    suppressed: bool
    clamped: bool = False  # the noisy counts' ratio was below 0 or above 1, shown at the end


@dataclass(frozen=True, slots=True)
class Count:
    """A noisy count with its 95% interval, none of them below 0: the count of this period's
    answers (not an estimate beyond them), so the interval covers the noise only."""

    value: int
    low: int
    high: int
    clamped: bool = False  # the noise took it below 0, and it is shown as 0


@dataclass(frozen=True, slots=True)
class IndexValue:
    """An index's mean on 0 to 100 in one group of an indices release, with its interval."""

    index: IndexName
    group: str
    value: float | None  # None: suppressed, or the noisy count is below one
    low: float | None
    high: float | None
    suppressed: bool
    clamped: bool = False  # the noisy mean was beyond 0 or 100, shown at the end

    @property
    def name(self) -> str:
        return INDICES[self.index]

    @property
    def readable(self) -> bool:
        """Shown, and its interval as shown is within READABLE points."""
        return self.value is not None and readable(self.low, self.high)


def outward(low: float, high: float, scale: int = 1) -> tuple[int, int]:
    """An interval's ends as shown, in whole units of ``1 / scale`` (points; percent with
    ``scale`` 100): rounded outward, so that a shown end never sits inside the interval
    (exactly: the float's own binary value is rounded, not a decimal near it)."""
    return math.floor(Decimal(low) * scale), math.ceil(Decimal(high) * scale)


def readable(low: float | None, high: float | None, scale: int = 1) -> bool:
    """Whether an interval, as shown (``outward``), is within READABLE points."""
    if low is None or high is None:
        return False
    shown_low, shown_high = outward(low, high, scale)
    return shown_high - shown_low <= READABLE


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
        return index_value(index, group, self.released(index, group), self.threshold, alpha)

    def noisy(self, index: IndexName, group: str = "all") -> means.Noisy | None:
        """An index's released cells in one group; None when suppressed."""
        return means.stored_group(self.cells, group).get(index)

    def released(
        self, index: IndexName, group: str = "all"
    ) -> tuple[means.Noisy, means.Scales] | None:
        """An index's released cells in one group and their noise scales, as verdicts read
        them; None when suppressed."""
        noisy = self.noisy(index, group)
        return None if noisy is None else (noisy, self.scales)

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
        return Count(
            max(0, written), max(0, written - bound), max(0, written + bound), clamped=written < 0
        )

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
        return Share(
            question,
            group or "all",
            value,
            interval.low,
            interval.high,
            suppressed=False,
            clamped=numerator < 0 or remainder < 0,  # the ratio beyond 0 or 1
        )


def index_value(
    index: IndexName,
    group: str,
    released: tuple[means.Noisy, means.Scales] | None,
    threshold: int,
    alpha: float = ALPHA,
) -> IndexValue:
    """An index's figure from its cells: the estimate (held at 0 or 100 where the noise took
    it beyond) and its interval, among the groups shown at ``threshold``."""
    if released is None:
        return IndexValue(index, group, None, None, None, suppressed=True)
    noisy, scales = released
    value = means.estimate(noisy)
    if value is None:
        return IndexValue(index, group, None, None, None, suppressed=False)
    found = means.interval(noisy, scales, threshold=threshold, alpha=alpha)
    clamped = abs(noisy.sum) > means.BOUND * noisy.n
    return IndexValue(index, group, value, found.low, found.high, False, clamped)


@dataclass(frozen=True, slots=True)
class Pooled:
    """The overall indices of a period that has no overall release of its own, added up
    (free: post-processing of released cells, PRIVACY.md) from releases of its respondents:
    the overall releases of the periods that make it up (a year of its quarters), or else the
    groups one breakdown release shows (``by``; the groups it suppressed are left out, and the
    page says so). A part below its reading floor (feedback.stats.means) is not added: its
    count is mostly the threshold's, whatever its size. Read as one group, none suppressed."""

    period: Period
    parts: tuple[Release, ...]
    by: str | None = None  # the breakdown whose groups are added up; None: each part's overall

    kind = "indices"
    breakdown = None
    threshold = 0  # the sum is not selected by a threshold (its parts were, above their floor)

    @property
    def indices(self) -> list[IndexName]:
        return [i for i in self.parts[0].indices if all(i in p.indices for p in self.parts)]

    def items(self, index: IndexName) -> list[Question]:
        return self.parts[0].items(index)

    def _cells(self, index: IndexName) -> list[tuple[means.Noisy, means.Scales]] | None:
        found = []
        for part in self.parts:
            for group in [g["group"] for g in part.groups] if self.by else ["all"]:
                cells = part.released(index, group)
                if cells is not None and cells[0].n >= means.reading_floor(
                    cells[1].count, part.threshold
                ):
                    found.append(cells)
                elif self.by is None:  # a period of the year missing: no total
                    return None
        return found or None

    def released(
        self, index: IndexName, group: str = "all"
    ) -> tuple[means.Noisy, means.Scales] | None:
        cells = self._cells(index) if group == "all" else None
        return None if cells is None else means.pooled(cells)

    def left_out(self, index: IndexName) -> list[str]:
        """The groups of the breakdown not added up (suppressed, or below their floor)."""
        if self.by is None:
            return []
        release = self.parts[0]
        return [
            g["group"]
            for g in release.groups
            if (cells := release.released(index, g["group"])) is None
            or cells[0].n < means.reading_floor(cells[1].count, release.threshold)
        ]

    def index(self, index: IndexName, group: str = "all", alpha: float = ALPHA) -> IndexValue:
        return index_value(index, group, self.released(index, group), self.threshold, alpha)

    def n(self) -> int | None:
        """Respondents (noisy): the parts' respondents added up; None if one has none shown
        (a period of the year), or all groups are suppressed (a breakdown)."""
        found = [part.n() for part in self.parts]
        if any(n is None for n in found):
            return None
        return sum(n for n in found if n is not None)

    @property
    def ids(self) -> tuple[uuid.UUID, ...]:
        return tuple(part.id for part in self.parts)


Overall = Release | Pooled  # a period's overall indices, released or added up


def overall_indices(releases: Sequence[Release], period: Period) -> Overall | None:
    """A period's overall indices: its own release; else the overall releases of the periods
    of one finer kind that make it up, all of one survey version (the coarsest such, fewest
    parts); else the groups of its first breakdown release (EQUITY, then time in program)."""
    indices = [r for r in releases if r.kind == "indices"]
    own = {r.period: r for r in indices if r.breakdown is None}
    if period in own:
        return own[period]
    finer = [g for g in GRANULARITIES if PER_YEAR[g] > PER_YEAR[period.granularity]]
    for granularity in reversed(finer):
        parts = [own.get(p) for p in _tiles(period, granularity)]
        found = [p for p in parts if p is not None]
        versions = {(p.survey.slug, p.survey.version) for p in found}
        if len(found) == len(parts) and len(versions) == 1:
            return Pooled(period, tuple(found))
    order = (*EQUITY, TIME_IN_PROGRAM)
    grouped = sorted(
        (r for r in indices if r.period == period and r.breakdown is not None),
        key=lambda r: order.index(r.breakdown) if r.breakdown in order else len(order),
    )
    return Pooled(period, (grouped[0],), by=grouped[0].breakdown) if grouped else None


def _tiles(period: Period, granularity: str) -> list[Period]:
    """The periods of ``granularity`` that make up ``period``."""
    found, start = [], period.start
    while start < period.end:
        found.append(Period.of(granularity, start))
        start = found[-1].end
    return found


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
    indices: Release | None = None  # the indices, overall, released as such
    # The overall indices of this granularity up to the period, released or added up.
    indices_trend: tuple[Overall, ...] = ()
    indices_groups: tuple[Release, ...] = ()  # the indices by gender, time in program...
    detail_periods: tuple[Period, ...] = ()  # the periods whose questions were released

    @property
    def indices_overall(self) -> Overall | None:
        """The period's overall indices, released or added up."""
        last = self.indices_trend[-1] if self.indices_trend else None
        return last if last is not None and last.period == self.period else None

    @property
    def main(self) -> Release | None:
        """The release the page's method section describes: the indices' if there is one, else
        the questions', else (a period released only by group) the first by group."""
        by_group = (*self.indices_groups, *self.equity, self.by_time)
        return self.indices or self.overall or next((r for r in by_group if r), None)

    def releases(self) -> list[Release]:
        """Every release the page reads (those added up included)."""
        overall = [
            part
            for found in self.indices_trend
            for part in (found.parts if isinstance(found, Pooled) else (found,))
        ]
        found = [
            self.overall,
            self.previous,
            *self.trend,
            *self.equity,
            self.by_time,
            self.indices,
            *overall,
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
    candidates = {
        Period.of(chosen.granularity, r.period.start)
        for r in releases
        if r.kind == "indices" and PER_YEAR[r.period.granularity] >= PER_YEAR[chosen.granularity]
    }
    indices_trend = [
        found
        for p in sorted(candidates, key=lambda p: p.start)
        if p.start <= chosen.start and (found := overall_indices(releases, p)) is not None
    ]
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
        indices_trend=tuple(indices_trend[-TREND_PERIODS:]),
        indices_groups=tuple(r for r in here if r.kind == "indices"),
        detail_periods=tuple(sorted(questions, key=lambda p: (p.start, p.granularity))),
    )


# What a release's metadata may show: definitions only. Releases made before 0013 also hold
# an exact channel mix and quarantine count, which are never shown.
PUBLISHED_METADATA = ("privacy_unit", "note", "composition")


def published_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: metadata[key] for key in PUBLISHED_METADATA if key in metadata}


def rounded(n: int | None) -> int | None:
    """Respondent counts are shown to the nearest ten (PRIVACY.md)."""
    return None if n is None else max(0, round(n, -1))
