"""No role the apps use reads a number that moves with survivors' actions (PRIVACY.md, Metadata;
feedback/exposure.py): 60 answers posted through the survivor app, spending 60 tokens, and SMS
conversations begun, then ANALYZE and VACUUM, between two snapshots of everything the staff and
survivor roles can read in PostgreSQL's catalogs (every readable column of every relation, and
every function callable without arguments), which must not differ; the statistics, sizes and
clocks themselves are refused, and so are counts and plans of the tables the survivor app
spends tokens from and keeps SMS conversations in (it does both through functions, whose
plans name no table). The owner's snapshots, taken the same way, differ: the snapshots would
see what moved."""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from feedback.cli.runtime import check_statistics
from feedback.collect.app import create_app
from feedback.config import Settings
from feedback.db import ROLES, STAFF, SURVIVOR, Connection, Pool
from feedback.envelope import Envelope
from feedback.errors import FeedbackError
from feedback.exposure import WITHHOLD_SQL, readable_statistics
from feedback.publish.invitations import create_batch
from feedback.sealing import seal
from tests import factories
from tests.cli import run_feedback
from tests.collect.conftest import SECRETS
from tests.collect.test_sms import TO, text
from tests.live import free_port

ANSWERS = 60
CONVERSATIONS = 5

# What each snapshot also asks for by name: the statistics, sizes and clocks that move with
# every answer. The apps' roles are refused each; the owner reads them, and they move.
PROBES = {
    "txid_current()": "SELECT txid_current()",
    "pg_current_xact_id()": "SELECT pg_current_xact_id()",
    "pg_current_snapshot()": "SELECT pg_current_snapshot()",
    "txid_current_snapshot()": "SELECT txid_current_snapshot()",
    "age(xid)": "SELECT age('3'::xid)",
    "mxid_age(xid)": "SELECT mxid_age('1'::xid)",
    "pg_xact_status(xid8)": "SELECT pg_xact_status('3'::xid8)",
    "txid_status(bigint)": "SELECT txid_status(3)",
    "pg_last_committed_xact()": "SELECT pg_last_committed_xact()",
    "pg_current_wal_lsn()": "SELECT pg_current_wal_lsn()",
    "pg_current_wal_insert_lsn()": "SELECT pg_current_wal_insert_lsn()",
    "pg_control_checkpoint()": "SELECT next_xid FROM pg_control_checkpoint()",
    "pg_export_snapshot()": "SELECT pg_export_snapshot()",
    "lo_create(oid)": "SELECT lo_create(0)",
    "pg_relation_size(submissions)": "SELECT pg_relation_size('submissions')",
    "pg_total_relation_size(invitations)": "SELECT pg_total_relation_size('invitations')",
    "pg_table_size(sms_sessions)": "SELECT pg_table_size('sms_sessions')",
    "pg_indexes_size(submissions)": "SELECT pg_indexes_size('submissions')",
    "pg_database_size()": "SELECT pg_database_size(current_database())",
    "pg_tablespace_size()": "SELECT pg_tablespace_size('pg_default')",
    "pg_relation_filenode(submissions)": "SELECT pg_relation_filenode('submissions')",
    "pg_relation_filepath(invitations)": "SELECT pg_relation_filepath('invitations')",
    "submission_blocks()": "SELECT submission_blocks()",
    "pg_stat_get_live_tuples(submissions)": (
        "SELECT pg_stat_get_live_tuples('submissions'::regclass)"
    ),
    "pg_stat_get_db_xact_commit()": (
        "SELECT pg_stat_get_db_xact_commit(oid) FROM pg_database WHERE datname = current_database()"
    ),
    "pg_stat_user_tables.n_live_tup": (
        "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'submissions'"
    ),
    "pg_stat_user_tables.n_tup_del": (
        "SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = 'invitations'"
    ),
    "pg_stat_database.xact_commit": (
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    ),
    "pg_stats": "SELECT null_frac FROM pg_stats WHERE tablename = 'invitations'",
    "pg_statio_user_tables": "SELECT heap_blks_read FROM pg_statio_user_tables",
    "pg_locks": "SELECT transactionid FROM pg_locks",
    "pg_stat_activity.backend_xid": "SELECT backend_xid FROM pg_stat_activity",
    "pg_prepared_xacts": "SELECT transaction FROM pg_prepared_xacts",
    "pg_replication_slots": "SELECT xmin FROM pg_replication_slots",
    "pg_class.reltuples": "SELECT reltuples FROM pg_class WHERE oid = 'submissions'::regclass",
    "pg_class.relpages": "SELECT relpages FROM pg_class WHERE oid = 'invitations'::regclass",
    "pg_class.relfrozenxid": "SELECT relfrozenxid FROM pg_class WHERE relname = 'submissions'",
    "pg_class.xmin": "SELECT xmin FROM pg_class WHERE relname = 'submissions'",
    "pg_class.*": "SELECT * FROM pg_class WHERE relname = 'submissions'",
    "pg_database.datfrozenxid": (
        "SELECT datfrozenxid FROM pg_database WHERE datname = current_database()"
    ),
    "temporary table": "CREATE TEMPORARY TABLE probe (x int)",
    # The WAL position, returned by writing a record; and a lock on a program's row, which
    # every answer's foreign key holds while it is stored: a refused NOWAIT timed each one.
    "pg_logical_emit_message()": "SELECT pg_logical_emit_message(false, '', '')",
    "a row lock on programs": "SELECT 1 FROM programs FOR UPDATE NOWAIT",
    # The survivor app's own tables: spent links per batch, conversations in progress, and the
    # sizes a plan's costs show. Its role finds and keeps rows through functions (CALLS).
    "count(*) invitations": "SELECT batch_id, count(*) FROM invitations GROUP BY batch_id",
    "count(*) sms_sessions": "SELECT count(*) FROM sms_sessions",
    "EXPLAIN invitations": "EXPLAIN SELECT * FROM invitations",
    "EXPLAIN sms_sessions": "EXPLAIN SELECT * FROM sms_sessions",
}
# The survivor role's calls of those functions, as EXPLAIN shows them: the same before and
# after, and naming no table (a SECURITY DEFINER function is never inlined into its caller).
CALLS = {
    "invitation_by_token": "EXPLAIN SELECT * FROM invitation_by_token(sha256('x'), 'link')",
    "store_sealed_batch": "EXPLAIN SELECT * FROM store_sealed_batch('{}', '{}', '{}', '{}')",
    "store_submission": "EXPLAIN SELECT store_submission(sha256('x'), 'web', '', '')",
    "sms_conversation": "EXPLAIN SELECT * FROM sms_conversation(sha256('x'))",
    "sms_handled": "EXPLAIN SELECT * FROM sms_handled(sha256('x'))",
}
# What the owner's snapshots must see move (of PROBES and of the catalogs' columns): if they
# did not, a quiet snapshot of the apps' roles would prove nothing.
MOVED_FOR_THE_OWNER = {
    "txid_current()",
    "pg_current_wal_lsn()",
    "pg_relation_size(submissions)",
    "pg_database_size()",
    "pg_stat_user_tables.n_live_tup",
    "pg_class.reltuples",
    "pg_catalog.pg_class.reltuples",
    "pg_catalog.pg_class.relpages",
    "pg_catalog.pg_stat_user_tables.n_live_tup",
    "pg_catalog.pg_stat_user_tables.last_analyze",
    "count(*) invitations",
    "count(*) sms_sessions",
    "EXPLAIN invitations",
    "EXPLAIN sms_sessions",
}

# Catalogs shared by the whole server, which other databases (other tests) change: only this
# database's row of pg_database is compared. A session's own prepared statements, cursors and
# settings are its own doing (asyncpg sets jit while it looks up a type).
SHARED_VIEWS = {"pg_roles", "pg_user", "pg_group"}
SESSION_VIEWS = {"pg_prepared_statements", "pg_cursors", "pg_settings"}
# Functions whose value moves by itself, or is the session's own, whatever survivors do.
MOVING_BY_THEMSELVES = {
    "now",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "pg_backend_pid",
    "inet_client_port",
    "pg_conf_load_time",
    "pg_notification_queue_usage",
    "pg_prepared_statement",
    "pg_cursor",
    "pg_show_all_settings",
    "pg_get_loaded_modules",  # PostgreSQL 18: plpgsql, once a session has run a function in it
}
NOT_VALUES = ["void", "trigger", "event_trigger", "internal", "language_handler"]


async def relations(conn: Connection, schemas: Iterable[str], skip: set[str]) -> dict[str, str]:
    """An md5 of each readable column's values (as a sorted multiset), system columns
    included, of every relation in ``schemas`` the connection's role can read."""
    found = await conn.fetch(
        """
        SELECT c.oid::regclass::text AS relation, c.relname,
               c.oid = 'pg_catalog.pg_database'::regclass AS one_row,
               array_agg(quote_ident(a.attname) ORDER BY a.attnum) AS columns
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE c.relkind IN ('r', 'p', 'v', 'm')
           AND c.relnamespace::regnamespace::text = ANY($1::text[])
           AND (NOT c.relisshared OR c.oid = 'pg_catalog.pg_database'::regclass)
           AND NOT a.attisdropped
           AND has_column_privilege(c.oid, a.attname::text, 'SELECT')
         GROUP BY c.oid, c.relname
        """,
        list(schemas),
    )
    values = {}
    for row in found:
        if row["relname"] in skip:
            continue
        digests = ", ".join(
            f"md5(coalesce(string_agg(coalesce({c}::text, '~'), ',' "
            f"ORDER BY coalesce({c}::text, '~')), ''))"
            for c in row["columns"]
        )
        where = " WHERE datname = current_database()" if row["one_row"] else ""
        name = row["relation"] if "." in row["relation"] else f"pg_catalog.{row['relation']}"
        try:
            got = await conn.fetchrow(f"SELECT {digests} FROM {row['relation']}{where}")
        except asyncpg.PostgresError as exc:  # a type with no text form: compared as an error
            values[name] = type(exc).__name__
            continue
        assert got is not None
        for column, digest in zip(row["columns"], got, strict=True):
            values[f"{name}.{column}"] = digest
    return values


async def functions(conn: Connection) -> dict[str, str]:
    """The value of every catalog function the role may call without arguments."""
    found = await conn.fetch(
        """
        SELECT p.oid::regprocedure::text AS signature, p.proname
          FROM pg_proc p
         WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f'
           AND p.pronargs = p.pronargdefaults AND p.provolatile <> 'i'
           AND p.prorettype <> ALL ($1::regtype[])
           AND has_function_privilege(p.oid, 'EXECUTE')
        """,
        NOT_VALUES,
    )
    values = {}
    for row in found:
        if row["proname"] in MOVING_BY_THEMSELVES:
            continue
        call = f"pg_catalog.{row['proname']}()"
        try:
            values[row["signature"]] = await conn.fetchval(
                f"SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY r::text), '')) FROM {call} r"
            )
        except asyncpg.PostgresError as exc:
            values[row["signature"]] = type(exc).__name__
    return values


async def probes(conn: Connection) -> dict[str, str]:
    """Each of PROBES, rolled back (the owner's temporary table and large object would show)."""
    values = {}
    for name, statement in PROBES.items():
        transaction = conn.transaction()
        await transaction.start()
        try:
            values[name] = repr(await conn.fetch(statement))
        except asyncpg.InsufficientPrivilegeError:
            values[name] = "refused"
        except asyncpg.PostgresError as exc:  # the owner: track_commit_timestamp is off
            values[name] = type(exc).__name__
        finally:
            await transaction.rollback()
    return values


async def calls(conn: Connection) -> dict[str, str]:
    plans = {name: "\n".join(r[0] for r in await conn.fetch(sql)) for name, sql in CALLS.items()}
    for name, plan in plans.items():
        assert not re.search(r"invitations|sms_sessions|submissions", plan), (name, plan)
    return plans


async def snapshot(conn: Connection, schemas: Iterable[str], skip: set[str]) -> dict[str, str]:
    values = await relations(conn, schemas, skip) | await functions(conn) | await probes(conn)
    if await conn.fetchval("SELECT current_user") == SURVIVOR:
        values |= await calls(conn)
    return values


@pytest.fixture
async def survivor(survivor_pool: Pool, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The survivor app in-process on the test's database, in the survivor role."""
    settings = replace(Settings.from_env({}), database_url=database_url)
    app = create_app(settings, SECRETS, pool=survivor_pool)
    async with app.router.lifespan_context(app) as state:

        async def asgi(scope, receive, send):
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            yield c


async def test_no_role_of_the_apps_reads_anything_that_moves_with_answers(
    conn: Connection,
    pool: Pool,
    staff_pool: Pool,
    survivor_pool: Pool,
    survivor: httpx.AsyncClient,
) -> None:
    keyed = await factories.keyed_tenant(conn)
    await conn.execute("UPDATE programs SET languages = '{en}'")
    await conn.execute("UPDATE organisations SET sms_number = $1", TO)
    links = await create_batch(conn, program_id=keyed.tenant.program_id, count=ANSWERS)
    codes = await create_batch(
        conn,
        program_id=keyed.tenant.program_id,
        count=CONVERSATIONS,
        medium="sms",
        sms_code_key=SECRETS.sms_code_key,
    )
    # Nothing either role can read moves: the survivor role spends tokens and keeps SMS
    # conversations through functions, without reading either table.
    watched = {
        STAFF: (["pg_catalog", "public"], SHARED_VIEWS | SESSION_VIEWS),
        SURVIVOR: (["pg_catalog", "public"], SHARED_VIEWS | SESSION_VIEWS),
    }
    roles = {STAFF: staff_pool, SURVIVOR: survivor_pool}
    before = {}
    for role, (schemas, skip) in watched.items():
        async with roles[role].acquire() as one:
            assert await readable_statistics(one) == [], role
            before[role] = await snapshot(one, schemas, skip)
    async with pool.acquire() as owner:
        owner_before = await snapshot(owner, ["pg_catalog"], SHARED_VIEWS | SESSION_VIEWS)

    for index, token in enumerate(links.tokens):
        answers = {"believed": 1 + index % 5, "respected": 1 + index // 5 % 5}
        box = seal(
            keyed.private_key.public_key,
            Envelope("rights-based", 1, "en", answers).to_plaintext(),
        )
        data = {"sealed": base64.b64encode(box).decode(), "key_id": str(keyed.tenant.key_id)}
        assert (await survivor.post(f"/s/{token}", data=data)).status_code == 200
    for index, code in enumerate(codes.tokens):
        assert (await text(survivor, code, sender=f"+1555{index:07d}"))[0] == 200
    assert await conn.fetchval("SELECT count(*) FROM submissions") == ANSWERS
    assert await conn.fetchval("SELECT count(*) FROM invitations") == CONVERSATIONS
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == CONVERSATIONS
    await conn.execute("ANALYZE")
    await conn.execute("VACUUM")

    async with pool.acquire() as owner:
        owner_after = await snapshot(owner, ["pg_catalog"], SHARED_VIEWS | SESSION_VIEWS)
    moved = {k for k, v in owner_after.items() if owner_before.get(k) != v}
    assert moved >= MOVED_FOR_THE_OWNER, MOVED_FOR_THE_OWNER - moved
    for role, (schemas, skip) in watched.items():
        async with roles[role].acquire() as one:
            after = await snapshot(one, schemas, skip)
        assert {k for k, v in after.items() if before[role].get(k) != v} == set(), role
        assert set(after) == set(before[role]), role
        assert {k for k in PROBES if after[k] != "refused"} == set(), role
    # Advisory locks: only the roles that take them may, so no other can probe the mix's
    # or a number's (the mix holds its lock as long as the week's rows take to rewrite).
    async with staff_pool.acquire() as staff, staff.transaction():
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await staff.fetchval("SELECT pg_try_advisory_xact_lock_shared(1)")
    async with survivor_pool.acquire() as taker, taker.transaction():
        assert await taker.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended('x', 7))")


def as_login(url: str, user: str, database: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}", path=f"/{database}"))


async def test_where_no_superuser_withholds_them_the_staff_app_starts_only_if_told_to(
    admin_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A managed PostgreSQL: the schema's owner is no superuser, and none runs the file. The
    migration says what is left open and what a superuser would run; the staff app refuses to
    start, in one line, unless FEEDBACK_ACCEPT_VISIBLE_STATISTICS is set, and then warns once."""
    tag = uuid.uuid4().hex[:8]
    owner, database = f"fb_managed_{tag}", f"fb_managed_{tag}"
    root = await asyncpg.connect(admin_url)
    try:
        await root.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE")  # as RDS's owner
        await root.execute(f"GRANT {', '.join(ROLES)} TO {owner}")
        await root.execute(f"CREATE DATABASE {database} OWNER {owner}")
        url = as_login(admin_url, owner, database)

        migrated = run_feedback("migrate", database_url=url)
        assert migrated.returncode == 0, migrated.stderr
        [warned] = [
            line
            for line in migrated.stderr.splitlines()
            if line.startswith("warning: the apps' roles can still read statistics")
        ]
        assert f"-d {database} -U SUPERUSER -v ON_ERROR_STOP=1 -f {WITHHOLD_SQL}" in warned
        assert re.search(
            r"\(\d+: pg_stat_user_tables, pg_class\.reltuples, txid_current\(\), ", warned
        )

        port = str(free_port())
        refused = run_feedback("serve", "--app", "staff", env={
            "FEEDBACK_DATABASE_URL": url, "FEEDBACK_PORT": port, "FEEDBACK_DATA_DIR": str(tmp_path)
        })  # fmt: skip
        assert refused.returncode == 1
        [error] = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
        assert "Traceback" not in refused.stderr
        assert error.startswith(f"error: the staff app's role {STAFF} can read statistics")
        assert str(WITHHOLD_SQL) in error
        assert "FEEDBACK_ACCEPT_VISIBLE_STATISTICS=true" in error

        # As `feedback serve` starts the staff app with the setting (in this process, which
        # is quicker than another start of the server).
        accepting = Settings.from_env({"FEEDBACK_ACCEPT_VISIBLE_STATISTICS": "true"})
        with caplog.at_level(logging.WARNING):
            await check_statistics(url, accepting)
        warned_of = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        [accepted] = [m for m in warned_of if m.startswith("FEEDBACK_ACCEPT_VISIBLE_STATISTICS")]
        assert "the staff app's role" in accepted
        # The owner's login is no staff login of its own: it may take the other roles.
        [wider] = [m for m in warned_of if "may take other roles" in m]
        assert wider.startswith(f"the staff app's database login {owner} may take other roles")
        with pytest.raises(FeedbackError, match="FEEDBACK_ACCEPT_VISIBLE_STATISTICS=true"):
            await check_statistics(url, Settings.from_env({}))

        # What the owner could do, it did: no temporary tables for anyone but itself.
        assert not await root.fetchval(
            "SELECT has_database_privilege('public', $1, 'TEMPORARY')", database
        )
    finally:
        await root.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await root.execute(f"DROP ROLE IF EXISTS {owner}")
        await root.close()


# Lookups the survivor app makes, of a token, number and receipt that are not there.
LOOKUPS = [
    "SELECT * FROM invitation_by_token(sha256('x'), 'link')",
    "SELECT * FROM sms_conversation(sha256('x'))",
    "SELECT * FROM sms_handled(sha256('x'))",
    "SELECT withdraw_submission(sha256('x'))",
]


async def test_a_lookup_reads_as_many_pages_however_many_rows_there_are(
    conn: Connection, survivor_pool: Pool
) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) counts the pages a call reads, and its time follows them:
    the survivor role's functions read their rows through a unique index, never by scanning a
    small table whole (which would count its pages), so neither says how many tokens,
    conversations or answers there are."""
    t = (await factories.keyed_tenant(conn)).tenant
    batch = await conn.fetchval(
        "INSERT INTO invitation_batches (organisation_id, program_id, survey_id, kind, medium,"
        " issued, expires_on) VALUES ($1, $2, $3, 'single', 'link', 1000, utc_today() + 30)"
        " RETURNING id",
        t.organisation_id,
        t.program_id,
        t.survey_id,
    )

    async def add(first: int, last: int) -> list[str]:
        rows = "FROM generate_series($1::int, $2::int) g"
        await conn.execute(
            f"INSERT INTO invitations (batch_id, token_hash) "
            f"SELECT $3, sha256(g::text::bytea) {rows}",
            first,
            last,
            batch,
        )
        await conn.execute(
            f"INSERT INTO sms_sessions (phone_hmac, organisation_id, program_id, survey_id, "
            f"idle_after) SELECT sha256(g::text::bytea), $3, $4, $5, sha384(g::text::bytea) {rows}",
            first,
            last,
            t.organisation_id,
            t.program_id,
            t.survey_id,
        )
        await conn.execute(
            f"INSERT INTO submissions (organisation_id, program_id, survey_id, channel, "
            f"ciphertext, receipt_hash) SELECT $3, $4, $5, 'web', sha512(g::text::bytea), "
            f"sha256(g::text::bytea) {rows}",
            first,
            last,
            t.organisation_id,
            t.program_id,
            t.survey_id,
        )
        await conn.execute("ANALYZE invitations, sms_sessions, submissions")
        async with survivor_pool.acquire() as survivor:
            plans = []
            for call in LOOKUPS:
                explain = f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) {call}"
                await survivor.fetch(explain)  # the first call also reads the catalogs
                plans.append("\n".join(row[0] for row in await survivor.fetch(explain)))
            return plans

    few = await add(1, 20)  # a page of each table
    many = await add(21, 120)  # three pages of each, in indexes of one page still
    assert all("Buffers: shared hit=" in plan for plan in few)
    assert many == few, (few, many)
