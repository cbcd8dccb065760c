"""What the database lets a role read that moves with survivors' actions, and withholding it.

PostgreSQL lets every role read the statistics views and functions (how many rows each table
gained and lost, when it was vacuumed), row estimates and sizes, and the transaction-id and
WAL clocks, which count every write transaction, each stored answer included: polled, any of
them times each arrival (PRIVACY.md, Metadata). Migration 0027 lists them
(``withheld_statistics()``, enumerated on the running server) and gives the apps' roles the
columns of their tables rather than whole tables, whose system column xmin is the clock too.
``WITHHOLD_SQL`` (feedback/sql/withhold_statistics.sql) revokes the rest, which only a
superuser may: ``feedback migrate`` runs it, and prints where it cannot what is left open and
how a superuser closes it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from feedback.db import Connection, Role
from feedback.migrate import LOCK_KEY

WITHHOLD_SQL = Path(__file__).resolve().parent / "sql" / "withhold_statistics.sql"

# Each withheld object that ``role`` (NULL: the connection's current role) can still read.
READABLE = """
SELECT w.name
  FROM withheld_statistics() w
 WHERE CASE w.kind
         WHEN 'view' THEN has_any_column_privilege(coalesce($1, current_user), w.object,
                                                   'SELECT')
         WHEN 'function' THEN has_function_privilege(coalesce($1, current_user), w.object,
                                                     'EXECUTE')
         WHEN 'column' THEN has_column_privilege(coalesce($1, current_user), w.object,
                                                 w.column_name::text, 'SELECT')
         WHEN 'database' THEN has_database_privilege(coalesce($1, current_user), w.object,
                                                     'TEMPORARY')
         WHEN 'schema' THEN has_schema_privilege(coalesce($1, current_user), w.object,
                                                 'CREATE')
         WHEN 'lock' THEN has_function_privilege(coalesce($1, current_user), w.object,
                                                 'EXECUTE')
                          AND coalesce($1, current_user)
                              NOT IN ('feedback_survivor', 'feedback_worker')
         WHEN 'connect' THEN has_database_privilege('public', w.object, 'CONNECT')
       END
 ORDER BY array_position($2::text[], w.name),
          array_position(
              ARRAY['view', 'function', 'column', 'database', 'schema', 'lock', 'connect'], w.kind
          ),
          w.name
"""
# Named first, where a role can read them: what an operator recognises.
TELLING = [
    "pg_stat_user_tables",
    "pg_class.reltuples",
    "txid_current()",
    "pg_relation_size(regclass)",
    "pg_current_wal_lsn()",
]


async def readable_statistics(conn: Connection, role: Role | None = None) -> list[str]:
    """The names of the statistics, sizes and clocks that ``role`` (by default the role the
    connection is in) can still read: views, functions (with their arguments), columns
    (``pg_class.reltuples``, ``public.invitations.xmin``), ``TEMPORARY`` on the database,
    ``CREATE`` on schema public, the advisory lock functions (but the survivor app's and the
    worker's, which take locks) and the server's other databases anyone may connect to. Empty
    when all is withheld."""
    return [row["name"] for row in await conn.fetch(READABLE, role, TELLING)]


async def withhold_statistics(conn: Connection) -> None:
    """Run ``WITHHOLD_SQL`` as the connection's login: all of it as a superuser; as the
    database's owner, what an owner may (its warning says what it left). Under the lock the
    migrations take, so that two runs at once do not change the same catalog rows."""
    sql = WITHHOLD_SQL.read_text(encoding="utf-8")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(sql)


def withhold_command(database_url: str) -> str:
    """The psql command a superuser runs to withhold them from the apps' roles: the URL's
    server and database (never its login or password), and the file's path."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    host = parts.hostname or next(iter(query.get("host", [])), None)
    port = parts.port or next(iter(query.get("port", [])), None)
    where = (f" -h {host}" if host else "") + (f" -p {port}" if port else "")
    database = parts.path.lstrip("/") or "DATABASE"
    return f"psql{where} -d {database} -U SUPERUSER -v ON_ERROR_STOP=1 -f {WITHHOLD_SQL}"


def summary(names: list[str], shown: int = 4) -> str:
    """``names`` in a few words: the count and the first ``shown``."""
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)}: {', '.join(names[:shown])}{more}"
