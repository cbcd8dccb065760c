"""Housekeeping for what the survivor side leaves in the database, run by the worker.

No outcome here counts anything: how many tokens expired, conversations lapsed or rows were
mixed are numbers about survivors (an expired batch's remainder is its used count), and an
outcome row carries the time it ran.
"""

from __future__ import annotations

import datetime as dt

from feedback.db import Connection
from feedback.jobs import Job
from feedback.locks import MOVING_SUBMISSIONS

DEFAULT_MIX_EVERY = dt.timedelta(hours=12)


async def delete_dead_invitations(conn: Connection) -> str:
    """Forget the tokens of batches that expired or were revoked (their batch rows stay, for
    staff). Spent tokens are already gone: the survivor side deletes them as it stores."""
    await conn.execute(
        """
        DELETE FROM invitations i
         USING invitation_batches b
         WHERE b.id = i.batch_id AND (b.expires_at < now() OR b.revoked_at IS NOT NULL)
        """
    )
    return "forgot the tokens of expired and revoked batches"


async def delete_idle_sms_sessions(conn: Connection) -> str:
    """Purge SMS conversations that went idle, with their sealed answers. Where a program
    keeps partial answers, the answers so far (already a standard sealed envelope) become a
    submission, and a single-use code is spent, in the same statement: in a subtransaction, so
    that the submission shares no xmin with the run's timestamped ``job_runs`` row."""
    async with conn.transaction():
        await _purge_idle_sms_sessions(conn)
    return "purged idle SMS conversations"


async def _purge_idle_sms_sessions(conn: Connection) -> None:
    await conn.execute(
        """
        WITH gone AS (
            DELETE FROM sms_sessions WHERE idle_expires_at < now()
            RETURNING organisation_id, program_id, survey_id, key_id, invitation_id, partial
        ), keep AS (
            SELECT g.*, b.kind
              FROM gone g
              JOIN programs p ON p.id = g.program_id AND p.keep_partial_sms
              JOIN invitations i ON i.id = g.invitation_id
              JOIN invitation_batches b ON b.id = i.batch_id AND b.revoked_at IS NULL
             WHERE g.partial IS NOT NULL
        ), spent AS (
            DELETE FROM invitations i
             USING keep k
             WHERE i.id = k.invitation_id AND k.kind = 'single'
            RETURNING i.id
        )
        INSERT INTO submissions (organisation_id, program_id, survey_id, key_id, channel,
                                 open_link, ciphertext)
        SELECT organisation_id, program_id, survey_id, key_id, 'sms', kind = 'open', partial
          FROM keep
         WHERE kind = 'open' OR invitation_id IN (SELECT id FROM spent)
        """
    )


async def mix_submissions(conn: Connection) -> str:
    """Rewrite, in random order and in one transaction of its own, every week that holds a
    submission not mixed yet (all that week's rows, mixed or not), so that xmin, ctid, the
    physical order and a pg_dump of a week's rows say nothing of the order or the day they
    arrived, and link them to no other row written at the time. A week is mixed once more
    after it ends, with its last arrivals.

    Rows move by delete and insert in one statement, each keeping its id and receipt; a
    withdrawal that meets a moved row looks again (see ``withdraw_submission``). The lock
    keeps a mix from running while a release marks what it counted (``MOVING_SUBMISSIONS``)."""
    async with conn.transaction():  # a subtransaction: its rows share no xmin with the run's
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MOVING_SUBMISSIONS)
        await conn.execute(
            """
            WITH moved AS (
                DELETE FROM submissions
                 WHERE received_week IN (SELECT received_week FROM submissions WHERE NOT mixed)
                RETURNING *
            )
            INSERT INTO submissions (id, organisation_id, program_id, survey_id, key_id, channel,
                                     open_link, received_week, ciphertext, receipt_hash,
                                     included_in_release, mixed)
            SELECT id, organisation_id, program_id, survey_id, key_id, channel, open_link,
                   received_week, ciphertext, receipt_hash, included_in_release, true
              FROM moved
             ORDER BY random()
            """
        )
    return "mixed every week that had new submissions"


def jobs(mix_every: dt.timedelta = DEFAULT_MIX_EVERY) -> tuple[Job, ...]:
    return (
        Job("expire-invitations", dt.timedelta(hours=1), delete_dead_invitations),
        Job("purge-idle-sms-sessions", dt.timedelta(minutes=5), delete_idle_sms_sessions),
        Job("mix-submissions", mix_every, mix_submissions),
    )
