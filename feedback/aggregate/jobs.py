"""Worker jobs of the aggregation side."""

from __future__ import annotations

import datetime as dt

from feedback.db import Connection
from feedback.jobs import Job


async def delete_released_ciphertexts(conn: Connection) -> str:
    """Retention: a sealed submission is deleted once every release the plan schedules for it
    has been made, and the last release that counted it is older than its organisation's
    grace period. Releases keep only noisy numbers, so nothing a report needs is lost. A
    submission no plan covers is kept: an admin may still plan its release."""
    await conn.execute(
        """
        DELETE FROM submissions s
         USING organisations o
         WHERE o.id = s.organisation_id
           AND s.included_in_release
           -- every planned release covering it has been made
           AND NOT EXISTS (
               SELECT 1 FROM release_plans p
                WHERE p.organisation_id = s.organisation_id AND p.survey_id = s.survey_id
                  AND p.budget_year = extract(year FROM s.received_week)
                  AND (p.program_id IS NULL OR p.program_id = s.program_id)
                  AND NOT EXISTS (
                      SELECT 1 FROM releases r
                       WHERE r.organisation_id = p.organisation_id
                         AND r.program_id IS NOT DISTINCT FROM p.program_id
                         AND r.survey_id = p.survey_id
                         AND r.granularity = p.granularity
                         AND r.breakdown IS NOT DISTINCT FROM p.breakdown
                         AND r.kind = p.kind
                         AND r.period_start = CASE p.granularity
                             WHEN 'half' THEN make_date(
                                 extract(year FROM s.received_week)::int,
                                 CASE WHEN extract(month FROM s.received_week) < 7 THEN 1
                                      ELSE 7 END,
                                 1)
                             ELSE date_trunc(p.granularity, s.received_week)::date END))
           -- and the grace period has passed since the last release that counted it
           AND NOT EXISTS (
               SELECT 1 FROM releases r
                WHERE r.organisation_id = s.organisation_id AND r.survey_id = s.survey_id
                  AND (r.program_id IS NULL OR r.program_id = s.program_id)
                  AND s.received_week >= r.period_start AND s.received_week < r.period_end
                  AND r.created_on > utc_today() - o.retention_grace_days)
        """
    )
    # No count: how many were deleted is an exact count of a period's submissions.
    return "deleted the ciphertexts whose scheduled releases are made and past grace"


JOBS = (Job("delete-released-ciphertexts", dt.timedelta(hours=6), delete_released_ciphertexts),)
