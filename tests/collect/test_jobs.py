from __future__ import annotations

import datetime as dt
import re
import secrets

from feedback.collect.jobs import delete_dead_invitations, idle_sms_sessions
from feedback.db import Connection
from feedback.phones import idle_seal
from tests import factories

NOW = dt.datetime.now(dt.UTC)


async def test_tokens_of_expired_and_revoked_batches_are_forgotten(
    conn: Connection, worker_conn: Connection
) -> None:
    t = await factories.tenant(conn)
    live = await factories.invitation(conn, t)
    poster = await factories.open_link(conn, t)
    await factories.invitation(conn, t, expires_on=NOW.date() - dt.timedelta(days=1))
    await factories.invitation(conn, t, revoked_on=NOW.date())
    outcome = await delete_dead_invitations(worker_conn)
    left = {r["id"] for r in await conn.fetch("SELECT id FROM invitations")}
    assert left == {live, poster}
    assert not re.search(r"\d", outcome)  # how many expired would say how many were used
    assert await conn.fetchval("SELECT count(*) FROM invitation_batches") == 4  # staff's record


async def test_idle_sms_sessions_are_purged(conn: Connection, worker_conn: Connection) -> None:
    """Each session's idle moment is sealed: the purge opens it with the phone key's seal; one
    sealed under another key is idle (it can never be read back)."""
    t = await factories.tenant(conn)
    phone_key = secrets.token_bytes(32)
    seal = idle_seal(phone_key)
    sealed = [
        seal.seal(NOW - dt.timedelta(minutes=5)),
        seal.seal(NOW + dt.timedelta(minutes=25)),
        idle_seal(secrets.token_bytes(32)).seal(NOW + dt.timedelta(minutes=25)),
    ]
    for moment in sealed:
        await conn.execute(
            """
            INSERT INTO sms_sessions (phone_hmac, organisation_id, program_id, survey_id,
                                      fragments, idle_after)
            VALUES ($1, $2, $3, $4, ARRAY[$5::bytea], $6)
            """,
            secrets.token_bytes(32),
            t.organisation_id,
            t.program_id,
            t.survey_id,
            secrets.token_bytes(80),
            moment,
        )
    outcome = await idle_sms_sessions(phone_key)(worker_conn)
    assert not re.search(r"\d", outcome)  # no count of lapsed conversations
    assert await conn.fetchval("SELECT idle_after FROM sms_sessions") == sealed[1]
