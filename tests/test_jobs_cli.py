"""`feedback jobs`: every job listed, any run now under the worker's lock; and the warning a
server with commit timestamps gets."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from feedback.cli.runtime import check_schema
from feedback.db import WORKER, Connection, connect, ensure_database
from feedback.embedded import embedded_postgres
from tests.cli import run_feedback

JOBS = (
    "expire-invitations",
    "purge-idle-sms-sessions",
    "mix-submissions",
    "delete-released-ciphertexts",
    "delete-staff-leftovers",
)


async def test_jobs_are_listed_run_now_and_refused_by_a_wrong_name(
    conn: Connection, database_url: str
) -> None:
    listed = run_feedback("jobs", "list", database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    for name in JOBS:
        assert re.search(rf"^{name}\s+every \d+ (h|min)\s+not run yet$", listed.stdout, re.M)
    ran = run_feedback("jobs", "run", "expire-invitations", database_url=database_url)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("expire-invitations: ")
    [row] = await conn.fetch("SELECT job, ran_on, outcome FROM job_runs")
    assert row["job"] == "expire-invitations"
    again = run_feedback("jobs", "list", database_url=database_url)
    assert re.search(
        rf"^expire-invitations\s+every 1 h\s+last ran on {row['ran_on']:%Y-%m-%d}: ",
        again.stdout,
        re.M,
    )
    wrong = run_feedback("jobs", "run", "tidy-up", database_url=database_url)
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines()[-1].startswith("error: no job 'tidy-up'; the jobs")


async def test_a_job_a_worker_is_running_is_not_run_twice(
    conn: Connection, database_url: str
) -> None:
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('feedback.jobs'), hashtext('mix-submissions'))"
        )
        busy = run_feedback("jobs", "run", "mix-submissions", database_url=database_url)
    assert busy.returncode == 1
    assert "a worker is running mix-submissions now" in busy.stderr
    assert await conn.fetchval("SELECT count(*) FROM job_runs") == 0


@pytest.mark.slow
async def test_a_server_that_records_commit_times_is_warned_about(tmp_path: Path) -> None:
    """track_commit_timestamp would date every answer to the second, and without autovacuum
    old row versions keep the transaction ids that order them: the commands warn, a line
    each, at start (`jobs list` checks the schema as `serve` and `worker` do)."""
    with embedded_postgres(tmp_path) as admin_url:
        url = await ensure_database(admin_url, "feedback")
        conn = await connect(url)
        try:
            await conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
            await conn.execute("ALTER SYSTEM SET autovacuum = off")
        finally:
            await conn.close()
    # The setting takes effect on the restart: each command starts the embedded server anew.
    env = {"FEEDBACK_DATA_DIR": str(tmp_path), "FEEDBACK_DATABASE_URL": ""}
    assert run_feedback("migrate", env=env).returncode == 0
    listed = run_feedback("jobs", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    warned = [line for line in listed.stderr.splitlines() if " WARNING " in line]
    assert len(warned) == 2, listed.stderr
    assert "track_commit_timestamp is on" in warned[0]
    assert "PostgreSQL's autovacuum is off, so autovacuum never runs" in warned[1]
    assert "ALTER SYSTEM SET autovacuum = on" in warned[1]


async def test_a_table_autovacuum_skips_is_warned_about(
    conn: Connection, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await conn.execute("ALTER TABLE submissions SET (autovacuum_enabled = off)")
    await conn.execute("ALTER TABLE sms_sessions SET (toast.autovacuum_enabled = false)")
    await conn.execute("ALTER TABLE invitations SET (autovacuum_enabled = on)")
    with caplog.at_level(logging.WARNING):
        await check_schema(database_url, role=WORKER, migrate_first=False)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("autovacuum is")]
    assert line.startswith("autovacuum is disabled on sms_sessions, submissions (storage ")
    assert "ALTER TABLE sms_sessions RESET (autovacuum_enabled, toast.autovacuum_enabled)" in line
