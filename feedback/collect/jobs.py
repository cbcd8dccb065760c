"""Housekeeping for what the survivor side leaves in the database."""

from __future__ import annotations

import datetime as dt

from feedback.db import Connection
from feedback.jobs import Job
from feedback.weeks import current_week

EXPIRED_INVITATION_GRACE = dt.timedelta(days=30)


async def delete_expired_invitations(conn: Connection) -> str:
    """Forget invitations (their token hashes) a month after they expired or were revoked;
    until then a late visitor still gets "this link has expired" rather than "unknown link"."""
    deleted = await conn.fetchval(
        """
        WITH gone AS (
            DELETE FROM invitations
             WHERE expires_at < now() - $1::interval
                OR revoked_at < now() - $1::interval
            RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        EXPIRED_INVITATION_GRACE,
    )
    return f"deleted {deleted} expired invitations"


async def delete_idle_sms_sessions(conn: Connection) -> str:
    """Purge SMS conversations that went idle, with their sealed answers, and replies kept
    for retries past their day. Where a program
    keeps partial answers, the answers so far (already a standard sealed envelope) become a
    submission, and a single-use code is spent, in the same statement."""
    row = await conn.fetchrow(
        """
        WITH gone AS (
            DELETE FROM sms_sessions WHERE idle_expires_at < now()
            RETURNING organisation_id, program_id, survey_id, key_id, invitation_id, partial
        ), keep AS (
            SELECT g.*, i.kind
              FROM gone g
              JOIN programs p ON p.id = g.program_id AND p.keep_partial_sms
              JOIN invitations i ON i.id = g.invitation_id AND i.revoked_at IS NULL
             WHERE g.partial IS NOT NULL AND (i.kind = 'open' OR i.used_week IS NULL)
        ), spent AS (
            UPDATE invitations i SET used_week = $1
              FROM keep k
             WHERE i.id = k.invitation_id AND k.kind = 'single'
            RETURNING i.id
        ), kept AS (
            INSERT INTO submissions (organisation_id, program_id, survey_id, key_id, channel,
                                     open_link, received_week, ciphertext)
            SELECT organisation_id, program_id, survey_id, key_id, 'sms', kind = 'open', $1,
                   partial
              FROM keep
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM kept) AS kept,
               (SELECT count(*) FROM spent) AS spent
        """,
        current_week(),
    )
    # Replies kept for retried webhooks: a day, then forgotten.
    await conn.execute("DELETE FROM sms_replies WHERE expires_hour < now()")
    assert row is not None  # noqa: S101 - an aggregate query returns one row
    return f"deleted {row['gone']} idle SMS sessions; kept partial answers of {row['kept']}"


JOBS = (
    Job("expire-invitations", dt.timedelta(hours=1), delete_expired_invitations),
    Job("purge-idle-sms-sessions", dt.timedelta(minutes=5), delete_idle_sms_sessions),
)
