from __future__ import annotations

import datetime as dt
import re
import secrets

from feedback.collect.jobs import delete_dead_invitations, delete_idle_sms_sessions
from feedback.db import Connection
from tests import factories

NOW = dt.datetime.now(dt.UTC)


async def test_tokens_of_expired_and_revoked_batches_are_forgotten(
    conn: Connection, worker_conn: Connection
) -> None:
    t = await factories.tenant(conn)
    live = await factories.invitation(conn, t)
    poster = await factories.open_link(conn, t)
    await factories.invitation(conn, t, expires_at=NOW - dt.timedelta(minutes=1))
    await factories.invitation(conn, t, revoked_at=NOW)
    outcome = await delete_dead_invitations(worker_conn)
    left = {r["id"] for r in await conn.fetch("SELECT id FROM invitations")}
    assert left == {live, poster}
    assert not re.search(r"\d", outcome)  # how many expired would say how many were used
    assert await conn.fetchval("SELECT count(*) FROM invitation_batches") == 4  # staff's record


async def test_idle_sms_sessions_are_purged(conn: Connection, worker_conn: Connection) -> None:
    t = await factories.tenant(conn)
    for minutes in (-5, 25):
        await conn.execute(
            """
            INSERT INTO sms_sessions (phone_hmac, organisation_id, program_id, survey_id, key_id,
                                      fragments, idle_expires_at)
            VALUES ($1, $2, $3, $4, $5, ARRAY[$6::bytea], now() + make_interval(mins => $7))
            """,
            secrets.token_bytes(32),
            t.organisation_id,
            t.program_id,
            t.survey_id,
            t.key_id,
            secrets.token_bytes(80),
            minutes,
        )
    outcome = await delete_idle_sms_sessions(worker_conn)
    assert not re.search(r"\d", outcome)  # no count of lapsed conversations
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 1
