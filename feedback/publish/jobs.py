"""What the worker does for the staff side: drawing the program pages of new releases
(feedback.publish.views), and housekeeping: sessions and known devices past their expiry,
set-password links that can no longer be used, and the daily counts of failed logins once
admins no longer need them."""

from __future__ import annotations

import datetime as dt

from feedback.db import Connection
from feedback.jobs import Job
from feedback.publish import views

LOGIN_FAILURES_KEPT = dt.timedelta(days=90)


async def delete_staff_leftovers(conn: Connection) -> str:
    async with conn.transaction():
        await conn.execute("DELETE FROM staff_sessions WHERE expires_on < utc_today()")
        await conn.execute("DELETE FROM staff_devices WHERE expires_on < utc_today()")
        await conn.execute(
            "DELETE FROM password_links WHERE expires_on < utc_today() OR used_on IS NOT NULL"
        )
        await conn.execute(
            "DELETE FROM login_failures WHERE day < utc_today() - $1::integer",
            LOGIN_FAILURES_KEPT.days,
        )
    return (
        "deleted expired staff sessions and known devices, spent or expired set-password "
        f"links and failed-login counts older than {LOGIN_FAILURES_KEPT.days} days"
    )


JOBS = (
    Job("delete-staff-leftovers", dt.timedelta(hours=1), delete_staff_leftovers),
    views.JOB,
)
