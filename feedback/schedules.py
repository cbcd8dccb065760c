"""Publication schedules: a series is published on a day of the month after each of its periods
ends ("quarterly on the 5th": 5 January, April, July and October; "yearly on the 15th": 15
January). The dates are APScheduler cron triggers', so that what the worker runs and what a
manifest promises as the next date are the same rule."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from apscheduler.triggers.cron import CronTrigger

from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.stats.periods import EVERY, GRANULARITIES, Granularity, Period

SERIES = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# The months in which a period of each granularity has just ended.
MONTHS: dict[Granularity, str] = {"month": "*", "quarter": "1,4,7,10", "half": "1,7", "year": "1"}


class ScheduleError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Schedule:
    organisation_id: uuid.UUID
    series: str
    granularity: Granularity
    day: int
    programs: tuple[uuid.UUID, ...] | None  # None: every program

    def trigger(self) -> CronTrigger:
        return CronTrigger(month=MONTHS[self.granularity], day=self.day, timezone=dt.UTC)

    def due(self, period: Period) -> dt.date:
        """The date ``period`` is published: the first firing on or after its end."""
        start = dt.datetime.combine(period.end, dt.time(), dt.UTC)
        fire: dt.datetime | None = self.trigger().get_next_fire_time(None, start)
        if fire is None:  # cannot be: a cron trigger without an end date fires again
            raise ScheduleError(f"the schedule {self.series} never fires after {period}")
        return fire.date()

    def latest_due(self, today: dt.date) -> Period:
        """The latest period whose publication date is ``today`` or before."""
        period = Period.of(self.granularity, today)
        while self.due(period) > today:
            period = Period.of(self.granularity, period.start - dt.timedelta(days=1))
        return period

    def next_due(self, period: Period) -> dt.date:
        """When the publication after ``period``'s is due."""
        return self.due(Period.of(self.granularity, period.end))

    def describe(self) -> str:
        return f"{EVERY[self.granularity]} on the {self.day}{_suffix(self.day)}"


def _suffix(day: int) -> str:
    return "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _schedule(row: object) -> Schedule:
    r = dict(row)  # type: ignore[call-overload]
    programs = r["programs"]
    return Schedule(
        r["organisation_id"],
        r["series"],
        r["granularity"],
        r["day"],
        None if programs is None else tuple(programs),
    )


async def schedules_of(conn: Connection, organisation_id: uuid.UUID | None) -> list[Schedule]:
    """An organisation's schedules (every organisation's when None), by series."""
    rows = await conn.fetch(
        """
        SELECT organisation_id, series, granularity, day, programs FROM publication_schedules
         WHERE $1::uuid IS NULL OR organisation_id = $1
         ORDER BY organisation_id, series
        """,
        organisation_id,
    )
    return [_schedule(row) for row in rows]


async def schedule_of(conn: Connection, organisation_id: uuid.UUID, series: str) -> Schedule:
    row = await conn.fetchrow(
        "SELECT organisation_id, series, granularity, day, programs FROM publication_schedules "
        "WHERE organisation_id = $1 AND series = $2",
        organisation_id,
        series,
    )
    if row is None:
        raise ScheduleError(
            f"no publication series {series!r}: add it with `feedback publications schedule`"
        )
    return _schedule(row)


async def add_schedule(
    conn: Connection,
    organisation_id: uuid.UUID,
    series: str,
    granularity: str,
    day: int,
    programs: list[uuid.UUID] | None,
) -> Schedule:
    if not SERIES.fullmatch(series):
        raise ScheduleError(f"{series!r}: a series' name is lower-case letters, digits and hyphens")
    if granularity not in GRANULARITIES:
        raise ScheduleError(f"{granularity!r}: choose one of {', '.join(GRANULARITIES)}")
    if not 1 <= day <= 28:
        raise ScheduleError(f"day {day}: choose 1 to 28, which every month has")
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM publication_schedules "
        "WHERE organisation_id = $1 AND series = $2)",
        organisation_id,
        series,
    ):
        raise ScheduleError(f"the series {series!r} exists already; a series keeps its schedule")
    await conn.execute(
        """
        INSERT INTO publication_schedules (organisation_id, series, granularity, day, programs)
        VALUES ($1, $2, $3, $4, $5)
        """,
        organisation_id,
        series,
        granularity,
        day,
        programs,
    )
    return Schedule(
        organisation_id,
        series,
        granularity,
        day,
        None if programs is None else tuple(programs),
    )
