"""The worker's housekeeping of the staff side, run in the worker's role: what can no longer
be used goes, what still can stays."""

from __future__ import annotations

import datetime as dt
import os

from feedback.db import Connection
from feedback.publish.accounts import make_password_link
from feedback.publish.jobs import LOGIN_FAILURES_KEPT, delete_staff_leftovers
from tests.publish.conftest import World

DAY = dt.timedelta(days=1)


async def test_expired_sessions_dead_links_and_old_failure_counts_are_deleted(
    world: World, conn: Connection, worker_conn: Connection
) -> None:
    row = await conn.fetchrow(
        "SELECT organisation_id, id FROM users WHERE email = $1", world.manager
    )
    assert row is not None
    org, user = row["organisation_id"], row["id"]
    for table in ("staff_sessions", "staff_devices"):
        for lifetime in (-DAY, dt.timedelta(0)):  # ended yesterday; ends at the end of today
            await conn.execute(
                f"INSERT INTO {table} (id_hash, organisation_id, user_id, expires_on) "
                "VALUES ($1, $2, $3, utc_today() + $4::integer)",
                os.urandom(32),
                org,
                user,
                lifetime.days,
            )
    # One link per user (a new link replaces the user's earlier one): expired, used, usable.
    links = {}
    for email in (world.admin, world.viewer, world.manager):
        other = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
        links[email] = await make_password_link(conn, organisation_id=org, user_id=other)
    await conn.execute(
        "UPDATE password_links SET expires_on = utc_today() - 1 "
        "WHERE user_id = (SELECT id FROM users WHERE email = $1)",
        world.admin,
    )
    await conn.execute(
        "UPDATE password_links SET used_on = utc_today() "
        "WHERE user_id = (SELECT id FROM users WHERE email = $1)",
        world.viewer,
    )
    for age in (LOGIN_FAILURES_KEPT * 2, LOGIN_FAILURES_KEPT / 2):
        await conn.execute(
            "INSERT INTO login_failures (organisation_id, user_id, day, attempts) "
            "VALUES ($1, $2, utc_today() - $3::integer, 4)",
            org,
            user,
            age.days,
        )
    assert len(set(links.values())) == 3

    outcome = await delete_staff_leftovers(worker_conn)

    assert "expired staff sessions" in outcome
    assert not await conn.fetchval(
        "SELECT count(*) FROM staff_sessions WHERE expires_on < utc_today()"
    )
    assert await conn.fetchval("SELECT count(*) FROM staff_sessions") == 1  # the live one
    assert (
        await conn.fetchval("SELECT count(*) FROM staff_devices WHERE expires_on >= utc_today()")
        == 1
    )
    assert await conn.fetchval("SELECT count(*) FROM staff_devices") == 1
    assert await conn.fetchval("SELECT count(*) FROM password_links") == 1  # the usable one
    assert await conn.fetchval("SELECT user_id FROM password_links") == await conn.fetchval(
        "SELECT id FROM users WHERE email = $1", world.manager
    )
    assert await conn.fetchval("SELECT count(*) FROM login_failures") == 1
    assert await conn.fetchval(
        "SELECT day > utc_today() - $1::integer FROM login_failures", LOGIN_FAILURES_KEPT.days
    )
