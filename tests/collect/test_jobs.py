from __future__ import annotations

import datetime as dt
import secrets

from feedback.collect.jobs import delete_expired_invitations, delete_idle_sms_sessions
from feedback.db import Connection
from tests import factories

NOW = dt.datetime.now(dt.UTC)


async def test_long_expired_and_revoked_invitations_are_forgotten(conn: Connection) -> None:
    t = await factories.tenant(conn)
    live = await factories.invitation(conn, t)
    recently_expired = await factories.invitation(conn, t, expires_at=NOW - dt.timedelta(days=2))
    await factories.invitation(conn, t, expires_at=NOW - dt.timedelta(days=31))
    await factories.invitation(conn, t, revoked_at=NOW - dt.timedelta(days=40))
    outcome = await delete_expired_invitations(conn)
    left = {r["id"] for r in await conn.fetch("SELECT id FROM invitations")}
    assert outcome == "deleted 2 expired invitations"
    assert left == {live, recently_expired}


async def test_idle_sms_sessions_are_purged(conn: Connection) -> None:
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
    assert await delete_idle_sms_sessions(conn) == (
        "deleted 1 idle SMS sessions; kept partial answers of 0"
    )
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 1
