from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from feedback.errors import BadMigrationName, EditedMigration, UnknownMigration
from feedback.migrate import apply_migrations, default_directory, discover, pending


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


ORDERED = {
    # Written out of order on purpose: the runner must sort by number.
    "0002_second.sql": "INSERT INTO trail (step) VALUES ('second');",
    "0001_first.sql": "CREATE TABLE trail (n serial, step text); "
    "INSERT INTO trail (step) VALUES ('first');",
    "0010_tenth.sql": "INSERT INTO trail (step) VALUES ('tenth');",
}


async def test_applies_in_number_order(empty_database_url: str, tmp_path: Path) -> None:
    directory = write(tmp_path / "m", ORDERED)
    conn = await asyncpg.connect(empty_database_url)
    try:
        applied = await apply_migrations(conn, directory)
        steps = await conn.fetch("SELECT step FROM trail ORDER BY n")
    finally:
        await conn.close()
    assert [m.version for m in applied] == [1, 2, 10]
    assert [r["step"] for r in steps] == ["first", "second", "tenth"]


async def test_second_run_changes_nothing(empty_database_url: str, tmp_path: Path) -> None:
    directory = write(tmp_path / "m", ORDERED)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, directory)
        before = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
        again = await apply_migrations(conn, directory)
        after = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
        rows = await conn.fetchval("SELECT count(*) FROM trail")
    finally:
        await conn.close()
    assert again == []
    assert before == after
    assert rows == 3


async def test_new_file_is_applied_later(empty_database_url: str, tmp_path: Path) -> None:
    directory = write(tmp_path / "m", ORDERED)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, directory)
        write(directory, {"0011_more.sql": "INSERT INTO trail (step) VALUES ('eleventh');"})
        assert [m.filename for m in await pending(conn, directory)] == ["0011_more.sql"]
        applied = await apply_migrations(conn, directory)
    finally:
        await conn.close()
    assert [m.filename for m in applied] == ["0011_more.sql"]


async def test_edited_applied_migration_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    directory = write(tmp_path / "m", ORDERED)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, directory)
        write(
            directory,
            {
                "0002_second.sql": "INSERT INTO trail (step) VALUES ('edited');",
                "0011_more.sql": "INSERT INTO trail (step) VALUES ('eleventh');",
            },
        )
        with pytest.raises(EditedMigration, match=r"0002_second\.sql was edited") as raised:
            await apply_migrations(conn, directory)
        with pytest.raises(EditedMigration):
            await pending(conn, directory)
        steps = [r["step"] for r in await conn.fetch("SELECT step FROM trail ORDER BY n")]
    finally:
        await conn.close()
    assert "new migration" in str(raised.value)
    assert steps == ["first", "second", "tenth"]  # the pending 0011 did not run either


async def test_unknown_applied_migration_is_refused(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = write(tmp_path / "m", ORDERED)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, directory)
        (directory / "0010_tenth.sql").unlink()
        with pytest.raises(UnknownMigration, match=r"0010_tenth\.sql"):
            await apply_migrations(conn, directory)
    finally:
        await conn.close()


async def test_failing_migration_leaves_nothing_half_applied(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = write(
        tmp_path / "m",
        {
            "0001_ok.sql": "CREATE TABLE kept (id int);",
            "0002_broken.sql": "CREATE TABLE half (id int); INSERT INTO nowhere VALUES (1);",
        },
    )
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await apply_migrations(conn, directory)
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        half = await conn.fetchval("SELECT to_regclass('half')")
        kept = await conn.fetchval("SELECT to_regclass('kept')")
        # The lock was released: another run can proceed once the file is fixed.
        write(directory, {"0002_broken.sql": "CREATE TABLE half (id int);"})
        await apply_migrations(conn, directory)
        fixed = await conn.fetchval("SELECT to_regclass('half')")
    finally:
        await conn.close()
    assert [r["version"] for r in versions] == [1]
    assert half is None
    assert kept is not None
    assert fixed is not None


async def test_two_runners_at_once_apply_each_file_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = write(
        tmp_path / "m",
        {
            "0001_slow.sql": "CREATE TABLE trail (step text); SELECT pg_sleep(0.3); "
            "INSERT INTO trail VALUES ('one');",
            "0002_next.sql": "INSERT INTO trail VALUES ('two');",
        },
    )
    first = await asyncpg.connect(empty_database_url)
    second = await asyncpg.connect(empty_database_url)
    try:
        results = await asyncio.gather(
            apply_migrations(first, directory), apply_migrations(second, directory)
        )
        steps = [r["step"] for r in await first.fetch("SELECT step FROM trail")]
    finally:
        await first.close()
        await second.close()
    assert sorted(len(r) for r in results) == [0, 2]
    assert steps == ["one", "two"]


def test_bad_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "a", {"1_short.sql": "SELECT 1;"})
    with pytest.raises(BadMigrationName, match=r"NNNN_description\.sql"):
        discover(tmp_path / "a")
    write(tmp_path / "b", {"0001_one.sql": "SELECT 1;", "0001_other.sql": "SELECT 1;"})
    with pytest.raises(BadMigrationName, match="share number 1"):
        discover(tmp_path / "b")


def test_project_migrations_are_well_formed() -> None:
    migrations = discover(default_directory())
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for migration in migrations:
        # Each file runs inside the runner's transaction; its own would end that early.
        assert "COMMIT" not in migration.sql.upper().split("--")[0]


async def test_schema_exists_only_through_migrations(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        before = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        applied = await apply_migrations(conn)
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    finally:
        await conn.close()
    assert before == 0
    assert len(applied) == len(discover(default_directory()))
    assert {
        "organisations",
        "programs",
        "users",
        "user_programs",
        "collection_keys",
        "signing_keys",
        "surveys",
        "invitations",
        "submissions",
        "sms_sessions",
        "releases",
        "privacy_ledger",
        "notes",
        "note_texts",
        "funders",
        "publications",
        "audit_log",
        "job_runs",
        "schema_migrations",
    } <= tables
