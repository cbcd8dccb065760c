"""The database itself enforces the data rules of DESIGN.md section 5."""

from __future__ import annotations

import datetime as dt
import secrets

import asyncpg
import pytest

from feedback.db import Connection
from tests import factories

MONDAY = dt.date(2026, 11, 23)
TODAY = dt.datetime.now(dt.UTC).date()


async def insert_submission(conn: Connection, t: factories.Tenant, week: dt.date) -> None:
    await conn.execute(
        """
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel,
                                 received_week, ciphertext)
        VALUES ($1, $2, $3, 'web', $4, $5)
        """,
        t.organisation_id,
        t.program_id,
        t.survey_id,
        week,
        secrets.token_bytes(1072),
    )


async def insert_release(conn: Connection, t: factories.Tenant) -> object:
    return await conn.fetchval(
        """
        INSERT INTO releases (organisation_id, program_id, survey_id, granularity, period_start,
                              period_end, mechanism, epsilon, noise_scale, threshold, cells)
        VALUES ($1, $2, $3, 'quarter', '2026-07-01', '2026-10-01', 'discrete_laplace',
                1.0, 20, 11, $4)
        RETURNING id
        """,
        t.organisation_id,
        t.program_id,
        t.survey_id,
        {"n": 42},
    )


async def test_submission_week_must_be_a_monday(conn: Connection) -> None:
    t = await factories.tenant(conn)
    await insert_submission(conn, t, MONDAY)
    for day in range(1, 7):
        with pytest.raises(asyncpg.CheckViolationError, match="received_week"):
            await insert_submission(conn, t, MONDAY + dt.timedelta(days=day))
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_survivor_tables_have_no_timestamp_columns(conn: Connection) -> None:
    rows = await conn.fetch(
        """
        SELECT table_name, column_name FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = 'submissions'
           AND data_type LIKE 'timestamp%'
        """
    )
    assert rows == []


async def test_release_rows_cannot_be_updated_or_deleted(conn: Connection) -> None:
    t = await factories.tenant(conn)
    release_id = await insert_release(conn, t)
    with pytest.raises(asyncpg.RestrictViolationError, match="immutable: UPDATE refused"):
        await conn.execute("UPDATE releases SET cells = '{}' WHERE id = $1", release_id)
    with pytest.raises(asyncpg.RestrictViolationError, match="immutable: DELETE refused"):
        await conn.execute("DELETE FROM releases WHERE id = $1", release_id)
    with pytest.raises(asyncpg.RestrictViolationError, match="immutable: TRUNCATE refused"):
        await conn.execute("TRUNCATE releases CASCADE")
    assert await conn.fetchval("SELECT cells FROM releases") == {"n": 42}


async def test_a_period_is_released_once(conn: Connection) -> None:
    t = await factories.tenant(conn)
    await insert_release(conn, t)
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert_release(conn, t)


async def test_ledger_and_audit_log_are_append_only(conn: Connection) -> None:
    t = await factories.tenant(conn)
    release_id = await insert_release(conn, t)
    await conn.execute(
        "INSERT INTO privacy_ledger (organisation_id, budget_year, release_id, epsilon) "
        "VALUES ($1, 2026, $2, 1.0)",
        t.organisation_id,
        release_id,
    )
    await conn.execute(
        "INSERT INTO audit_log (organisation_id, action) VALUES ($1, 'release.view')",
        t.organisation_id,
    )
    for statement in (
        "UPDATE privacy_ledger SET epsilon = 0.1",
        "DELETE FROM privacy_ledger",
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
    ):
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute(statement)


async def test_one_current_collection_key_per_organisation(conn: Connection) -> None:
    t = await factories.tenant(conn)
    with pytest.raises(asyncpg.UniqueViolationError, match="collection_keys_one_current"):
        await conn.execute(
            "INSERT INTO collection_keys (organisation_id, public_key) VALUES ($1, $2)",
            t.organisation_id,
            secrets.token_bytes(32),
        )
    await conn.execute(
        "UPDATE collection_keys SET retired_week = current_iso_week() WHERE id = $1", t.key_id
    )
    await conn.execute(
        "INSERT INTO collection_keys (organisation_id, public_key) VALUES ($1, $2)",
        t.organisation_id,
        secrets.token_bytes(32),
    )
    with pytest.raises(asyncpg.RestrictViolationError, match="only be retired"):
        await conn.execute(
            "UPDATE collection_keys SET public_key = $2 WHERE id = $1",
            t.key_id,
            secrets.token_bytes(32),
        )


async def test_wrapped_key_comes_with_all_its_kdf_parameters(conn: Connection) -> None:
    t = await factories.tenant(conn)
    await conn.execute(
        "UPDATE collection_keys SET retired_week = current_iso_week() WHERE id = $1", t.key_id
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO collection_keys (organisation_id, public_key, wrapped_private_key) "
            "VALUES ($1, $2, $3)",
            t.organisation_id,
            secrets.token_bytes(32),
            secrets.token_bytes(72),
        )


async def test_rows_cannot_cross_organisations(conn: Connection) -> None:
    mine = await factories.tenant(conn, "mine")
    theirs = await factories.tenant(conn, "theirs")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        # my organisation, their program
        await insert_submission(
            conn,
            factories.Tenant(mine.organisation_id, theirs.program_id, mine.survey_id, mine.key_id),
            MONDAY,
        )
    user_id = await conn.fetchval(
        "INSERT INTO users (organisation_id, email, role) VALUES ($1, 'm@x.org', 'manager') "
        "RETURNING id",
        mine.organisation_id,
    )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO user_programs (organisation_id, user_id, program_id) VALUES ($1, $2, $3)",
            mine.organisation_id,
            user_id,
            theirs.program_id,
        )


async def test_survey_definitions_are_immutable(conn: Connection) -> None:
    t = await factories.tenant(conn)
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("UPDATE surveys SET definition = '{}' WHERE id = $1", t.survey_id)


async def test_single_use_batches_need_an_expiry_and_open_links_are_one_that_never_expires(
    conn: Connection,
) -> None:
    t = await factories.tenant(conn)
    for kind, issued, expires in (("single", 5, None), ("open", 2, None), ("open", 1, TODAY)):
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO invitation_batches (organisation_id, program_id, survey_id, kind, "
                "medium, issued, expires_on) VALUES ($1, $2, $3, $4, 'link', $5, $6)",
                t.organisation_id,
                t.program_id,
                t.survey_id,
                kind,
                issued,
                expires,
            )


async def test_a_spent_token_keeps_nothing(conn: Connection) -> None:
    """The invitations table holds unspent tokens only (their hash and their batch): no week,
    no program, no position that could say which submission spent one."""
    columns = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'invitations'"
    )
    assert {c["column_name"] for c in columns} == {"id", "batch_id", "token_hash"}


async def test_programs_keep_their_three_latest_notes(conn: Connection) -> None:
    t = await factories.tenant(conn)

    async def note(text: str) -> object:  # notes of one day, in the order they were written
        note_id = await conn.fetchval(
            "INSERT INTO notes (organisation_id, program_id) VALUES ($1, $2) RETURNING id",
            t.organisation_id,
            t.program_id,
        )
        await conn.execute(
            "INSERT INTO note_texts (note_id, language, body) VALUES ($1, 'en', $2)", note_id, text
        )
        return note_id

    async def latest() -> list[dict[str, str]]:
        value: list[dict[str, str]] = await conn.fetchval(
            "SELECT latest_notes FROM programs WHERE id = $1", t.program_id
        )
        return value

    assert await latest() == []
    oldest = await note("one")
    await note("two")
    await note("three")
    newest = await note("four")
    assert await latest() == [{"en": "four"}, {"en": "three"}, {"en": "two"}]
    await conn.execute(
        "INSERT INTO note_texts (note_id, language, body) VALUES ($1, 'es', 'cuatro')", newest
    )
    await conn.execute("UPDATE notes SET withdrawn_on = utc_today() WHERE id = $1", newest)
    assert await latest() == [{"en": "three"}, {"en": "two"}, {"en": "one"}]
    await conn.execute("DELETE FROM notes WHERE id = $1", oldest)
    assert await latest() == [{"en": "three"}, {"en": "two"}]
