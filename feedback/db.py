"""Database connections: one asyncpg pool per process, opened and closed by its owner.

Every connection carries a statement timeout, so that a stuck query cannot hold a web worker
forever. Connection failures become ``DatabaseUnavailable`` with a message that names the
server (never its password) and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from feedback.errors import ConfigError, DatabaseUnavailable

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Record: TypeAlias = asyncpg.Record
Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)

CONNECT_TIMEOUT_S = 10.0


async def keep_session(conn: Connection) -> None:
    """The pool's reset on release. asyncpg itself still rolls back an open transaction and
    drops listeners; this skips its extra round trip (``pg_advisory_unlock_all; CLOSE ALL;
    UNLISTEN *; RESET ALL``), which cost a third of the survey post's time. Safe because no
    pooled connection is left with session state: nothing here runs SET, LISTEN, WITH HOLD
    cursors or session-level advisory locks on a pooled connection (jobs use transaction
    locks; the migration runner uses a connection of its own)."""


async def init_connection(conn: Connection) -> None:
    """Codecs every connection gets: json and jsonb as Python objects."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def server_settings(statement_timeout_ms: int) -> dict[str, str]:
    return {
        "application_name": "feedback",
        "statement_timeout": str(statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(max(statement_timeout_ms * 2, 60_000)),
        "timezone": "UTC",
    }


@contextlib.asynccontextmanager
async def create_pool(
    url: str, *, statement_timeout_ms: int = 5000, max_size: int = 10
) -> AsyncIterator[Pool]:
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            server_settings=server_settings(statement_timeout_ms),
            init=init_connection,
            reset=keep_session,
        )
    except BaseException as exc:
        raise _unavailable(url, exc) from None
    try:
        yield pool
    finally:
        await pool.close()


async def connect(url: str, *, statement_timeout_ms: int = 60_000) -> Connection:
    """One connection outside any pool, for migrations and admin work."""
    try:
        conn = await asyncpg.connect(
            url, timeout=CONNECT_TIMEOUT_S, server_settings=server_settings(statement_timeout_ms)
        )
    except BaseException as exc:
        raise _unavailable(url, exc) from None
    await init_connection(conn)
    return conn


def redact(url: str) -> str:
    """The URL with its password replaced, safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database ``name`` (keeps ``?host=`` socket queries)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def ensure_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server if it is missing; return its URL."""
    conn = await connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


def _unavailable(url: str, exc: BaseException) -> BaseException:
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        return exc  # not ours to translate
    where = redact(url)
    if isinstance(exc, ValueError | asyncpg.ClientConfigurationError):
        return ConfigError(f"database URL {where} is malformed ({exc}): fix FEEDBACK_DATABASE_URL")
    if isinstance(exc, TimeoutError):
        reason = "timed out"
    elif isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    else:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DatabaseUnavailable(
        f"cannot reach the database at {where} ({reason}): start PostgreSQL there, fix "
        "FEEDBACK_DATABASE_URL, or leave it unset to use the embedded server"
    )
