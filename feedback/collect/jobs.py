"""Housekeeping for what the survivor side leaves in the database, run by the worker.

No outcome here counts anything: how many tokens expired, conversations lapsed or rows were
mixed are numbers about survivors (an expired batch's remainder is its used count).
"""

from __future__ import annotations

import datetime as dt
import uuid

from feedback.collect.sms.store import is_idle
from feedback.db import Connection
from feedback.jobs import Action, Job
from feedback.locks import MOVING_SUBMISSIONS
from feedback.phones import idle_seal
from feedback.secretfiles import check_shared

DEFAULT_MIX_EVERY = dt.timedelta(hours=1)


async def delete_dead_invitations(conn: Connection) -> str:
    """Forget the tokens of batches that expired or were revoked (their batch rows stay, for
    staff). Spent tokens are already gone: the survivor side deletes them as it stores."""
    await conn.execute(
        """
        DELETE FROM invitations i
         USING invitation_batches b
         WHERE b.id = i.batch_id AND (b.expires_on < utc_today() OR b.revoked_on IS NOT NULL)
        """
    )
    return "forgot the tokens of expired and revoked batches"


def idle_sms_sessions(phone_hmac: bytes) -> Action:
    """Purge SMS conversations that went idle (their sealed moments, opened with the survivor
    app's phone key, which each run checks is the database's), with their sealed answers.
    Where a program keeps partial answers, the answers so far (already a standard sealed
    envelope) become a submission, and a single-use code is spent, in the same statement: in
    a subtransaction, so that the submission shares no xmin with anything else the run
    writes."""
    idle = idle_seal(phone_hmac)

    async def purge(conn: Connection) -> str:
        await check_shared(conn, {"PHONE_HMAC_KEY": phone_hmac})
        sessions = await conn.fetch("SELECT id, idle_after FROM sms_sessions")
        gone = [
            (row["id"], row["idle_after"]) for row in sessions if is_idle(idle, row["idle_after"])
        ]
        if gone:
            async with conn.transaction():
                await _purge(conn, gone)
        return "purged idle SMS conversations"

    return purge


async def _purge(conn: Connection, gone: list[tuple[uuid.UUID, bytes]]) -> None:
    """Delete the conversations named, each only if its idle moment is still the one read (a
    text that came meanwhile sealed a new one: the conversation goes on)."""
    await conn.execute(
        """
        WITH gone AS (
            DELETE FROM sms_sessions
             WHERE (id, idle_after) IN (SELECT * FROM unnest($1::uuid[], $2::bytea[]))
            RETURNING organisation_id, program_id, survey_id, invitation_id, partial
        ), keep AS (
            SELECT g.*, b.kind
              FROM gone g
              JOIN programs p ON p.id = g.program_id AND p.keep_partial_sms
              JOIN invitations i ON i.id = g.invitation_id
              JOIN invitation_batches b ON b.id = i.batch_id AND b.revoked_on IS NULL
             WHERE g.partial IS NOT NULL
        ), spent AS (
            DELETE FROM invitations i
             USING keep k
             WHERE i.id = k.invitation_id AND k.kind = 'single'
            RETURNING i.id
        )
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel, open_link,
                                 ciphertext)
        SELECT organisation_id, program_id, survey_id, 'sms', kind = 'open', partial
          FROM keep
         WHERE kind = 'open' OR invitation_id IN (SELECT id FROM spent)
        """,
        [session for session, _ in gone],
        [moment for _, moment in gone],
    )


async def mix_submissions(conn: Connection) -> str:
    """Rewrite, in random order and in one transaction of its own, the current week, every
    week that holds a submission not mixed yet, and every week that has ended and was not
    mixed since (all that week's rows, mixed or not), so that xmin, ctid, the physical order
    and a pg_dump of a week's rows say nothing of the order or the day they arrived, and link
    them to no other row written at the time. The current week is rewritten at every run,
    whether or not anything came: its rows' xmin is then the latest mix's, not the last one
    that found something new (which would date the week's newest answer). A week is mixed
    once more after it ends, for the same reason.

    Rows move by delete and insert in one statement, each keeping its id and receipt; a
    withdrawal that meets a moved row looks again (see ``withdraw_submission``). The lock
    keeps a mix from running while a release marks what it counted (``MOVING_SUBMISSIONS``)."""
    async with conn.transaction():  # a subtransaction: its rows share no xmin with the run's
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MOVING_SUBMISSIONS)
        await conn.execute(
            """
            WITH moved AS (
                DELETE FROM submissions
                 WHERE received_week IN (
                       SELECT current_iso_week()
                       UNION
                       SELECT received_week FROM submissions WHERE NOT mixed
                       UNION
                       SELECT received_week FROM submissions
                        WHERE NOT week_closed AND received_week < current_iso_week())
                RETURNING *
            )
            INSERT INTO submissions (id, organisation_id, program_id, survey_id, channel,
                                     open_link, received_week, ciphertext, receipt_hash,
                                     included_in_release, mixed, week_closed)
            SELECT id, organisation_id, program_id, survey_id, channel, open_link,
                   received_week, ciphertext, receipt_hash, included_in_release, true,
                   received_week < current_iso_week()
              FROM moved
             ORDER BY random()
            """
        )
    return "mixed every week that had new submissions or had ended"


def jobs(phone_hmac: bytes, mix_every: dt.timedelta = DEFAULT_MIX_EVERY) -> tuple[Job, ...]:
    """The survivor side's housekeeping; ``phone_hmac`` (the survivor app's) opens the moments
    SMS conversations go idle."""
    return (
        Job("expire-invitations", dt.timedelta(hours=1), delete_dead_invitations),
        Job("purge-idle-sms-sessions", dt.timedelta(minutes=5), idle_sms_sessions(phone_hmac)),
        Job("mix-submissions", mix_every, mix_submissions),
    )
