"""One database role per trust surface (migrations/0014_roles.sql): what each may read is
refused by the database itself, and every process takes its role on every connection."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from feedback.cli.wiring import build_web_app
from feedback.config import Settings
from feedback.db import ROLES, STAFF, SURVIVOR, WORKER, Connection, Role, connect
from feedback.secretfiles import ServiceSecrets

SECRETS = ServiceSecrets(
    session=b"s" * 32, phone_hmac=b"p" * 32, sms_code_key=b"c" * 32, sms_auth_token=b"t" * 32
)

# Which tables each role can read at all (any column). A table missing here fails the test:
# a new table is granted in its migration, and placed here, on purpose.
READABLE: dict[str, set[Role]] = {
    "organisations": {SURVIVOR, STAFF, WORKER},
    "programs": {SURVIVOR, STAFF, WORKER},
    "surveys": {SURVIVOR, STAFF, WORKER},
    "collection_keys": {SURVIVOR, STAFF, WORKER},  # the public halves (see COLUMNS)
    "signing_keys": {STAFF, WORKER},
    "invitation_batches": {STAFF, WORKER},  # the survivor app finds links through a function
    # Staff write tokens but never count what is left; the survivor app finds and spends
    # them, and keeps SMS conversations, through functions (SURVIVOR_MAY, DEFINERS).
    "invitations": {WORKER},
    "submissions": {WORKER},  # the survivor app stores and withdraws through functions
    "sms_sessions": {WORKER},
    "releases": {STAFF, WORKER},
    "privacy_ledger": {STAFF, WORKER},
    "release_plans": {STAFF, WORKER},
    "release_views": {STAFF, WORKER},  # drawn from releases only
    "notes": {STAFF},
    "note_texts": {STAFF},
    "funders": {STAFF},
    "publications": {STAFF, WORKER},  # the worker signs and stores them
    "publication_files": {STAFF, WORKER},
    "publication_schedules": {STAFF, WORKER},
    "publication_requests": {STAFF, WORKER},  # the staff app asks, the worker settles
    "funder_programs": {STAFF},
    "networks": {STAFF, WORKER},
    "network_members": {STAFF, WORKER},
    "network_imports": {STAFF, WORKER},
    "users": {STAFF},
    "user_programs": {STAFF},
    "staff_sessions": {STAFF, WORKER},  # the worker: expires_on only, to delete dead ones
    "staff_devices": {STAFF, WORKER},  # the same
    "login_failures": {STAFF, WORKER},
    "password_links": {STAFF, WORKER},  # the worker: expires_on and used_on only
    "api_tokens": {STAFF},
    "audit_log": {STAFF, WORKER},
    "job_runs": {WORKER},
    "schema_migrations": {SURVIVOR, STAFF, WORKER},  # each process checks it at start
    "secret_fingerprints": {SURVIVOR, STAFF, WORKER},  # the worker shares the phone key
}

# Columns that a role which can read the table still may not.
HIDDEN: dict[tuple[str, str], set[Role]] = {
    ("collection_keys", "wrapped_private_key"): {SURVIVOR, STAFF},
    ("collection_keys", "kdf_salt"): {SURVIVOR, STAFF},
    ("signing_keys", "wrapped_private_key"): {STAFF},
    ("submissions", "ciphertext"): {SURVIVOR},
    ("organisations", "epsilon_per_year"): {SURVIVOR},
}


# Everything the survivor app's role (the internet-facing one) may do to any table or view:
# nothing to one not named here. It has no privilege at all on invitations or sms_sessions, so
# it counts neither (how many links of a batch were used, how many conversations there were);
# it reads and spends tokens and keeps conversations through the functions in DEFINERS.
SURVIVOR_MAY: dict[str, set[str]] = {
    "organisations": {"SELECT"},
    "programs": {"SELECT"},
    "surveys": {"SELECT"},
    "collection_keys": {"SELECT"},
    "schema_migrations": {"SELECT"},
    "secret_fingerprints": {"SELECT", "INSERT"},
}
PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]

# Which roles may call each function that runs as the schema's owner (SECURITY DEFINER). A
# function missing here fails the test: each is granted on purpose, pins its search_path,
# and answers about the one token, number or receipt it is given.
DEFINERS: dict[str, set[Role]] = {
    "invitation_by_token(bytea,text)": {SURVIVOR},
    "store_submission(bytea,text,bytea,bytea)": {SURVIVOR},
    "store_sealed_batch(bytea[],uuid[],bytea[],bytea[])": {SURVIVOR},
    "withdraw_submission(bytea)": {SURVIVOR},
    "sms_conversation(bytea)": {SURVIVOR},
    "sms_start(bytea,bytea,text,bytea)": {SURVIVOR},
    "sms_save(bytea,uuid,text,integer,integer,bytea[],bytea,bytea)": {SURVIVOR},
    "sms_forget(bytea)": {SURVIVOR},
    "sms_submit(bytea,uuid,bytea)": {SURVIVOR},
    "sms_handled(bytea)": {SURVIVOR},
    "sms_remember_reply(bytea,bytea,text,integer)": {SURVIVOR},
    "issue_invitations(uuid,bytea[])": {STAFF},
    "refresh_latest_notes(uuid)": {STAFF},  # through the notes' triggers
    "rename_program(uuid,text,text)": {STAFF},  # staff may not update (so lock) programs
    "submission_blocks()": {WORKER},
}


async def test_every_table_is_readable_by_exactly_the_roles_it_should_be(conn: Connection) -> None:
    tables = {
        row["tablename"]
        for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert tables == set(READABLE), "classify every table in READABLE (and grant it)"
    for table, readers in READABLE.items():
        for role in ROLES:
            can = await conn.fetchval(
                "SELECT has_any_column_privilege($1, $2, 'SELECT')", role, table
            )
            assert can is (role in readers), f"{role} reading {table}"
    for (table, column), hidden in HIDDEN.items():
        for role in hidden:
            assert not await conn.fetchval(
                "SELECT has_column_privilege($1, $2, $3, 'SELECT')", role, table, column
            ), f"{role} reading {table}.{column}"


async def test_the_survivor_role_may_do_only_what_its_app_does(conn: Connection) -> None:
    granted = await conn.fetch(
        """
        SELECT c.relname, p.privilege
          FROM pg_class c, unnest($2::text[]) AS p(privilege)
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
           AND (has_table_privilege($1, c.oid, p.privilege)
                OR (p.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                    AND has_any_column_privilege($1, c.oid, p.privilege)))
        """,
        SURVIVOR,
        PRIVILEGES,
    )
    may: dict[str, set[str]] = {}
    for row in granted:
        may.setdefault(row["relname"], set()).add(row["privilege"])
    assert may == SURVIVOR_MAY
    definers = {
        row["function"]: row
        for row in await conn.fetch(
            """
            SELECT p.oid::regprocedure::text AS function, p.proconfig AS settings,
                   array(SELECT r FROM unnest($1::text[]) AS r
                          WHERE has_function_privilege(r, p.oid, 'EXECUTE')) AS callers
              FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
            """,
            list(ROLES),
        )
    }
    assert set(definers) == set(DEFINERS), "classify every SECURITY DEFINER function"
    for function, callers in DEFINERS.items():
        assert set(definers[function]["callers"]) == callers, function
        assert "search_path=public, pg_temp" in definers[function]["settings"], function


async def test_no_role_reads_a_system_column(conn: Connection) -> None:
    """Roles are given a table's columns, never the whole table, whose SELECT also reads xmin:
    the transaction that wrote a row, so the current transaction id for a row the role has
    just written (migrations/0027_withheld_statistics.sql). The worker alone keeps the whole
    of submissions, whose ctid it slices by. A later migration grants columns too."""
    whole = await conn.fetch(
        """
        SELECT r.rolname, c.relname
          FROM pg_class c, pg_roles r
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND r.rolname = ANY($1::text[])
           AND has_column_privilege(r.oid, c.oid, 'xmin', 'SELECT')
        """,
        list(ROLES),
    )
    assert {(r["rolname"], r["relname"]) for r in whole} == {(WORKER, "submissions")}


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        (SURVIVOR, "SELECT wrapped_private_key FROM collection_keys"),
        (SURVIVOR, "SELECT * FROM releases"),
        (SURVIVOR, "SELECT * FROM users"),
        (SURVIVOR, "SELECT ciphertext FROM submissions"),
        (SURVIVOR, "UPDATE submissions SET included_in_release = true"),
        (SURVIVOR, "DELETE FROM submissions"),  # withdrawal goes through its function
        (SURVIVOR, "SELECT issue_invitations(gen_random_uuid(), '{}')"),
        (STAFF, "SELECT withdraw_submission('x')"),
        (
            STAFF,
            "INSERT INTO invitations (batch_id, token_hash) "
            "VALUES (gen_random_uuid(), sha256('x'))",
        ),
        (STAFF, "SELECT ciphertext FROM submissions"),
        (STAFF, "SELECT count(*) FROM submissions"),
        (STAFF, "SELECT wrapped_private_key FROM signing_keys"),
        (STAFF, "SELECT wrapped_private_key FROM collection_keys"),
        (STAFF, "SELECT count(*) FROM invitations"),
        (STAFF, "SELECT * FROM sms_sessions"),
        (
            STAFF,
            "INSERT INTO privacy_ledger (organisation_id, budget_year, release_id, epsilon) "
            "VALUES (gen_random_uuid(), 2026, gen_random_uuid(), 1)",
        ),
        (STAFF, "UPDATE organisations SET epsilon_per_year = 10"),  # the budget: CLI only
        (STAFF, "UPDATE organisations SET release_threshold = 1"),
        (STAFF, "UPDATE programs SET slug = 'x'"),
        (
            STAFF,
            "INSERT INTO programs (organisation_id, slug, name, privacy_group) "
            "SELECT id, 'p2', 'P', 'solo' FROM organisations",
        ),
        (
            STAFF,
            "INSERT INTO programs (organisation_id, slug, name, keep_partial_sms) "
            "SELECT id, 'p3', 'P', true FROM organisations",
        ),
        (
            STAFF,  # a request is what and who: only the worker settles it
            "INSERT INTO publication_requests (organisation_id, series, period, outcome) "
            "SELECT id, 'quarterly', '2026-Q1', 'published' FROM organisations",
        ),
        (STAFF, "UPDATE publication_requests SET outcome = 'x'"),
        (
            STAFF,
            "INSERT INTO publication_files (publication_id, path, data) "
            "VALUES (gen_random_uuid(), 'x', 'x')",
        ),
        (STAFF, "UPDATE funders SET name = 'x'"),
        (WORKER, "DELETE FROM publication_schedules"),
        (WORKER, "SELECT * FROM users"),
        (WORKER, "UPDATE releases SET cells = '{}'"),
        # The transaction-id clock, through a row the role writes or reads.
        (STAFF, "SELECT xmin FROM notes"),
        (STAFF, "SELECT ctid FROM invitation_batches"),
        (
            STAFF,
            "INSERT INTO audit_log (action) VALUES ('x') RETURNING xmin",
        ),
        (SURVIVOR, "SELECT xmin FROM invitations"),
        (SURVIVOR, "DELETE FROM invitations WHERE false RETURNING xmin"),
        (SURVIVOR, "SELECT xmax FROM programs"),  # the xid of the last answer's FK lock
        (WORKER, "SELECT xmax FROM programs"),
        (STAFF, "CREATE TEMPORARY TABLE t (x int)"),
        (STAFF, "CREATE TABLE t (x int)"),
    ],
)
async def test_a_role_cannot_do_what_its_surface_never_needs(
    database_url: str, role: Role, statement: str
) -> None:
    conn = await connect(database_url, role=role)
    try:
        assert await conn.fetchval("SELECT current_user") == role
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_the_worker_reads_what_it_counts(database_url: str) -> None:
    conn = await connect(database_url, role=WORKER)
    try:
        await conn.fetch("SELECT ciphertext, wrapped_private_key FROM submissions, collection_keys")
    finally:
        await conn.close()


async def test_the_web_apps_open_pools_of_their_own_in_their_own_roles(database_url: str) -> None:
    """As `feedback serve` and `feedback demo` run them: both apps in one process, each with a
    pool of its own whose every connection takes its role."""
    settings = replace(Settings.from_env({}), database_url=database_url)
    app = build_web_app(settings, SECRETS)
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        survivor, staff = state["survivor_pool"], state["staff_pool"]
        assert survivor is not staff
        for pool, role in ((survivor, SURVIVOR), (staff, STAFF)):
            async with pool.acquire() as one, pool.acquire() as two:
                for conn in (one, two):
                    who = await conn.fetchrow(
                        "SELECT current_user AS role, current_setting('application_name') AS app"
                    )
                    assert who is not None
                    assert (who["role"], who["app"]) == (role, role.replace("_", ":"))


async def test_a_login_that_may_not_take_the_role_is_told_what_to_do(
    conn: Connection, database_url: str
) -> None:
    await conn.execute("DROP ROLE IF EXISTS feedback_test_stranger")
    await conn.execute("CREATE ROLE feedback_test_stranger LOGIN")
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO feedback_test_stranger')
    try:
        parts = urlsplit(database_url)
        login = parts.netloc.rpartition("@")[2]
        stranger = urlunsplit(parts._replace(netloc=f"feedback_test_stranger@{login}"))
        with pytest.raises(Exception, match="cannot take the role feedback_survivor"):
            await connect(stranger, role=SURVIVOR)
    finally:
        await conn.execute(f'REVOKE CONNECT ON DATABASE "{database}" FROM feedback_test_stranger')
        await conn.execute("DROP ROLE feedback_test_stranger")
