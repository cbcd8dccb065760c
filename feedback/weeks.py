"""ISO weeks: the only time survivors' rows carry (the Monday that starts the week, in UTC)."""

from __future__ import annotations

import datetime as dt


def week_start(day: dt.date) -> dt.date:
    """The Monday of ``day``'s ISO week."""
    return day - dt.timedelta(days=day.weekday())


def current_week(now: dt.datetime | None = None) -> dt.date:
    """The Monday of this ISO week in UTC."""
    moment = now or dt.datetime.now(dt.UTC)
    return week_start(moment.astimezone(dt.UTC).date())
