"""`feedback backup` and `feedback restore`: a dump encrypted to the operator's age key, restored
into an empty database, from which the key holder makes a release with their passphrase."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import asyncpg
import pyrage
import pytest

from feedback.db import Connection
from feedback.envelope import Envelope
from tests import factories
from tests.aggregate.test_aggregate_cli import keys_from_the_cli, one_error, seal_in
from tests.cli import run_feedback
from tests.live import PG_DUMP

# PostgreSQL's client tools: the ones pgserver bundles (a dependency, so always there, and
# no older than the servers tested on).
TOOLS = {"PATH": f"{PG_DUMP.parent}{os.pathsep}{os.environ['PATH']}"}


def feedback(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_feedback(
        *args, database_url=database_url, env={**TOOLS, "FEEDBACK_INSECURE_TEST_KDF": "true"}
    )


@pytest.mark.slow
async def test_a_backup_restores_into_an_empty_database_and_releases_from_there(
    conn: Connection, database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
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
