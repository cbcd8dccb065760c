"""`feedback users create`: the first admin, with a one-time set-password link."""

from __future__ import annotations

import re

from feedback.db import Connection
from tests import factories
from tests.cli import run_feedback


async def test_users_create_prints_a_one_time_link(conn: Connection, database_url: str) -> None:
    await factories.tenant(conn)
    made = run_feedback("users", "create", "--email", "Boss@Org.Example", database_url=database_url)
    assert made.returncode == 0, made.stderr
    assert "created admin boss@org.example" in made.stdout
    link = re.search(r"/staff/set-password/([A-Za-z0-9_-]+)", made.stdout)
    assert link
    row = await conn.fetchrow("SELECT role, password_hash FROM users")
    assert row is not None
    assert (row["role"], row["password_hash"]) == ("admin", None)  # until the link is used
    assert link[1].encode() not in await conn.fetchval("SELECT token_hash FROM password_links")

    again = run_feedback(
        "users", "create", "--email", "boss@org.example", database_url=database_url
    )
    assert again.returncode == 1
    assert "already an account for boss@org.example" in again.stderr
    unknown = run_feedback(
        "users",
        "create",
        "--email",
        "m@org.example",
        "--role",
        "manager",
        "-p",
        "nowhere",
        database_url=database_url,
    )
    assert unknown.returncode == 1
    assert "no program 'nowhere'" in unknown.stderr
