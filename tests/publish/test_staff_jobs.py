"""The worker's housekeeping of the staff side, run in the worker's role: what can no longer
be used goes, what still can stays."""

from __future__ import annotations

import datetime as dt
import os

from feedback.db import Connection
from feedback.publish.accounts import make_password_link
from feedback.publish.jobs import LOGIN_FAILURES_KEPT, delete_staff_leftovers
from tests.publish.conftest import World

HOUR = dt.timedelta(hours=1)


async def test_expired_sessions_dead_links_and_old_failure_counts_are_deleted(
    world: World, conn: Connection, worker_conn: Connection
) -> None:
    row = await conn.fetchrow(
        "SELECT organisation_id, id FROM users WHERE email = $1", world.manager
    )
    assert row is not None
    org, user = row["organisation_id"], row["id"]
    for lifetime in (-HOUR, HOUR):
        await conn.execute(
            "INSERT INTO staff_sessions (id_hash, organisation_id, user_id, expires_at) "
            "VALUES ($1, $2, $3, now() + $4)",
            os.urandom(32),
            org,
            user,
            lifetime,
        )
    links = [await make_password_link(conn, organisation_id=org, user_id=user) for _ in range(3)]
    await conn.execute(
        "UPDATE password_links SET expires_at = now() - interval '1 minute' "
        "WHERE token_hash = (SELECT token_hash FROM password_links LIMIT 1)"
    )
    await conn.execute(
        "UPDATE password_links SET used_at = now() "
        "WHERE token_hash = (SELECT token_hash FROM password_links "
        "WHERE expires_at > now() LIMIT 1)"
    )
    for age in (LOGIN_FAILURES_KEPT * 2, LOGIN_FAILURES_KEPT / 2):
        await conn.execute(
            "INSERT INTO login_failures (organisation_id, user_id, hour, attempts) "
            "VALUES ($1, $2, date_trunc('hour', now() - $3::interval), 4)",
            org,
            user,
            age,
        )
    assert len(links) == 3

    outcome = await delete_staff_leftovers(worker_conn)

    assert "expired staff sessions" in outcome
    assert await conn.fetchval("SELECT count(*) FROM staff_sessions WHERE expires_at < now()") == 0
    assert await conn.fetchval("SELECT count(*) FROM staff_sessions") == 1  # the live one
    assert await conn.fetchval("SELECT count(*) FROM password_links") == 1  # the usable one
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM password_links WHERE used_at IS NULL AND expires_at > now()"
        )
        == 1
    )
    assert await conn.fetchval("SELECT count(*) FROM login_failures") == 1
    assert await conn.fetchval(
        "SELECT hour > now() - $1::interval FROM login_failures", LOGIN_FAILURES_KEPT
    )
