"""`feedback backup` and `feedback restore`: a dump encrypted to the operator's age key, restored
into an empty database, from which the key holder makes a release with their passphrase."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pyrage
import pytest

from feedback.backups import tool_major
from feedback.db import Connection
from feedback.embedded import POSTGRES_MAJOR
from feedback.envelope import Envelope
from tests import factories
from tests.aggregate.test_aggregate_cli import keys_from_the_cli, one_error, seal_in
from tests.cli import run_feedback
from tests.live import PG_DUMP

EMBEDDED_TOOLS = {"PATH": f"{PG_DUMP.parent}{os.pathsep}{os.environ['PATH']}"}


async def tools_for(database_url: str) -> dict[str, str]:
    """PostgreSQL's client tools of the server's major version, as docs/operations.md asks:
    the embedded PostgreSQL's own against itself, otherwise the machine's (a server the
    machine runs comes with its client tools)."""
    conn = await asyncpg.connect(database_url)
    try:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    if major == int(POSTGRES_MAJOR):
        return EMBEDDED_TOOLS
    if shutil.which("pg_restore") is None or tool_major("pg_restore") != major:
        pytest.fail(f"the tests need PostgreSQL {major}'s client tools (postgresql-client)")
    return {}


def with_tools(tools: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def feedback(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**tools, "FEEDBACK_INSECURE_TEST_KDF": "true"}
        return run_feedback(*args, database_url=database_url, env=env)

    return feedback


@pytest.mark.slow
async def test_a_backup_restores_into_an_empty_database_and_releases_from_there(
    conn: Connection, database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    feedback = with_tools(await tools_for(database_url))
    t = await factories.tenant(conn)
    secret, key = await keys_from_the_cli(conn, database_url, tmp_path)
    for i in range(30):
        await seal_in(conn, t, key, Envelope("rights-based", 1, "en", {"believed": 1 + i % 5}))
    identity = pyrage.x25519.Identity.generate()
    identity_file = tmp_path / "backup-key.txt"
    identity_file.write_text(f"# created for the test\n{identity}\n")
    public = str(identity.to_public())
    backup = tmp_path / "feedback.dump.age"

    wrong = one_error(feedback(database_url, "backup", "--to", str(backup), "--recipient", "x"))
    assert "is not an age public key" in wrong
    made = feedback(database_url, "backup", "--to", str(backup), "--recipient", public)
    assert made.returncode == 0, made.stderr
    written = backup.read_bytes()
    assert written.startswith(b"age-encryption.org/v1\n")
    assert b"rights-based" not in written  # no table, survey or row in the clear
    assert backup.stat().st_mode & 0o077 == 0
    again = feedback(database_url, "backup", "--to", str(backup), "--recipient", public)
    assert "never overwrites" in one_error(again)
    assert backup.read_bytes() == written

    # A restore only into an empty database, and only with the recipient's identity.
    into_used = feedback(
        database_url, "restore", "--from", str(backup), "--identity", str(identity_file)
    )
    assert "the database is not empty" in one_error(into_used)
    other = tmp_path / "other-key.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    refused = feedback(
        empty_database_url, "restore", "--from", str(backup), "--identity", str(other)
    )
    assert "does not open with this identity" in one_error(refused)
    cut = tmp_path / "cut.dump.age"  # a copy cut short: damaged on the way
    cut.write_bytes(written[: len(written) // 2])
    damaged = feedback(
        empty_database_url, "restore", "--from", str(cut), "--identity", str(identity_file)
    )
    assert "Nothing was restored" in one_error(damaged) or "changed nothing" in damaged.stderr
    copy = await asyncpg.connect(empty_database_url)
    try:
        assert (
            await copy.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        )
    finally:
        await copy.close()
    restored = feedback(
        empty_database_url, "restore", "--from", str(backup), "--identity", str(identity_file)
    )
    assert restored.returncode == 0, restored.stderr

    copy = await asyncpg.connect(empty_database_url)
    try:
        assert await copy.fetchval("SELECT count(*) FROM submissions") == 30
    finally:
        await copy.close()
    planned = feedback(
        empty_database_url,
        "plan", "add", "--year", "2026", "-p", "shelter", "-q", "believed", "--accept-wide",
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    released = feedback(
        empty_database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(secret)
    )
    assert released.returncode == 0, released.stderr
    assert "(made)" in released.stdout
    copy = await asyncpg.connect(empty_database_url)
    try:
        assert await copy.fetchval("SELECT count(*) FROM releases") == 1
        assert await copy.fetchval("SELECT bool_and(included_in_release) FROM submissions")
    finally:
        await copy.close()
