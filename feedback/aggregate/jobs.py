"""Worker jobs of the aggregation side."""

from __future__ import annotations

import datetime as dt

from feedback.db import Connection
from feedback.jobs import Job


async def delete_released_ciphertexts(conn: Connection) -> str:
    """Retention: a sealed submission counted in a release is deleted once its organisation's
    grace period has passed since its week. Releases keep only noisy numbers, so nothing
    that a report needs is lost."""
    deleted = await conn.fetchval(
        """
        WITH gone AS (
            DELETE FROM submissions s
             USING organisations o
             WHERE o.id = s.organisation_id
               AND s.included_in_release
               AND s.received_week + make_interval(days => o.retention_grace_days + 7)
                   < current_date
            RETURNING 1
        )
        SELECT count(*) FROM gone
        """
    )
    return f"deleted {deleted} released ciphertexts past their grace period"


JOBS = (Job("delete-released-ciphertexts", dt.timedelta(hours=6), delete_released_ciphertexts),)
