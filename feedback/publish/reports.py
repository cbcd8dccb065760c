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

from feedback.cells import SUPPRESSED
from feedback.db import Connection
from feedback.periods import Period
from feedback.shares import ALPHA, headline, noise_bound, share_interval
from feedback.surveys import Question, Survey, from_json

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
class Release:
    id: uuid.UUID
    period: Period
    breakdown: str | None
    epsilon: Decimal
    noise_scale: Decimal
    threshold: int
    cells: dict[str, Any]
    metadata: dict[str, Any]
    survey: Survey
    created_at: dt.datetime

    @property
    def groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.cells["groups"]
        return groups

    @property
    def questions(self) -> list[Question]:
        first = self.groups[0]["questions"] if self.groups else {}
        return [self.survey.question(q) for q in first]

    def shown(self) -> list[dict[str, Any]]:
        return [g for g in self.groups if g["n"] != SUPPRESSED]

    def n(self) -> int | None:
        """Respondents (noisy): the sum over the groups shown; None if all are suppressed."""
        shown = self.shown()
        return sum(g["n"] for g in shown) if shown else None

    @property
    def half_width(self) -> int:
        """95% noise half-width of any one cell."""
        return noise_bound(float(self.noise_scale), 1, ALPHA)

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
    conn: Connection, organisation_id: uuid.UUID, program_id: uuid.UUID
) -> list[Release]:
    """Every release of a program, oldest period first."""
    rows = await conn.fetch(
        """
        SELECT id, survey_id, granularity, period_start, breakdown, epsilon, noise_scale,
               threshold, cells, metadata, created_at
          FROM releases
         WHERE organisation_id = $1 AND program_id = $2 AND kind = 'questions'
         ORDER BY period_start, breakdown NULLS FIRST
        """,
        organisation_id,
        program_id,
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
            period=Period.of(row["granularity"], row["period_start"]),
            breakdown=row["breakdown"],
            epsilon=row["epsilon"],
            noise_scale=row["noise_scale"],
            threshold=row["threshold"],
            cells=row["cells"],
            metadata=published_metadata(row["metadata"]),
            survey=surveys[row["survey_id"]],
            created_at=row["created_at"],
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Report:
    """What the dashboard shows for one program and period."""

    period: Period
    periods: list[Period]  # every period with an overall release, for the selector
    overall: Release | None
    previous: Release | None
    trend: list[Release]  # the latest overall releases of this granularity up to the period
    equity: list[Release]
    by_time: Release | None


def report(releases: Sequence[Release], period: Period | None) -> Report | None:
    """The report for ``period`` (default: the latest with an overall release)."""
    overall = {(r.period): r for r in releases if r.breakdown is None}
    if not overall:
        return None
    periods = sorted(overall, key=lambda p: (p.start, p.granularity))
    chosen = period if period is not None else periods[-1]
    same = [p for p in periods if p.granularity == chosen.granularity]
    earlier = [p for p in same if p.start < chosen.start]
    shown = [p for p in same if p.start <= chosen.start][-TREND_PERIODS:]
    return Report(
        period=chosen,
        periods=periods,
        overall=overall.get(chosen),
        previous=overall[earlier[-1]] if earlier else None,
        trend=[overall[p] for p in shown],
        equity=[r for r in releases if r.period == chosen and r.breakdown in EQUITY],
        by_time=next(
            (r for r in releases if r.period == chosen and r.breakdown == TIME_IN_PROGRAM), None
        ),
    )


# What a release's metadata may show: definitions only. Releases made before 0013 also hold
# an exact channel mix and quarantine count, which are never shown.
PUBLISHED_METADATA = ("privacy_unit", "note", "composition")


def published_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: metadata[key] for key in PUBLISHED_METADATA if key in metadata}


def rounded(n: int | None) -> int | None:
    """Respondent counts are shown to the nearest ten (PRIVACY.md)."""
    return None if n is None else max(0, round(n, -1))
