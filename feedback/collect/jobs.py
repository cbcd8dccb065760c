"""Housekeeping for what the survivor side leaves in the database."""

from __future__ import annotations

import datetime as dt

from feedback.db import Connection
from feedback.jobs import Job

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
    """Purge SMS conversations that went idle, with their sealed fragments."""
    deleted = await conn.fetchval(
        """
        WITH gone AS (
            DELETE FROM sms_sessions WHERE idle_expires_at < now() RETURNING 1
        )
        SELECT count(*) FROM gone
        """
    )
    return f"deleted {deleted} idle SMS sessions"


JOBS = (
    Job("expire-invitations", dt.timedelta(hours=1), delete_expired_invitations),
    Job("purge-idle-sms-sessions", dt.timedelta(minutes=5), delete_idle_sms_sessions),
)
