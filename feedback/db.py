"""Database connections: asyncpg pools, opened and closed by their owners, one per trust
surface in a process.

Every connection carries a statement timeout, so that a stuck query cannot hold a web worker
forever, and takes the role of the surface it serves (``SURVIVOR``, ``STAFF``, ``WORKER``:
see migrations/0014_roles.sql), so that the database itself refuses what that surface may not
read. Connection failures become ``DatabaseUnavailable`` with a message that names the server
(never its password) and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from typing import Literal, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from feedback.errors import ConfigError, DatabaseUnavailable

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Record: TypeAlias = asyncpg.Record
Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)

CONNECT_TIMEOUT_S = 10.0

Role = Literal["feedback_survivor", "feedback_staff", "feedback_worker"]
SURVIVOR: Role = "feedback_survivor"
STAFF: Role = "feedback_staff"
WORKER: Role = "feedback_worker"
ROLES: tuple[Role, ...] = (SURVIVOR, STAFF, WORKER)


async def keep_session(conn: Connection) -> None:
    """The pool's reset on release. asyncpg itself still rolls back an open transaction and
    drops listeners; this skips its extra round trip (``pg_advisory_unlock_all; CLOSE ALL;
    UNLISTEN *; RESET ALL``), which cost a third of the survey post's time, and keeps the
    connection's role. Safe because no pooled connection is left with other session state:
    nothing here runs SET (but the role's), LISTEN, WITH HOLD cursors or session-level
    advisory locks on a pooled connection (jobs use transaction locks; the migration runner
    uses a connection of its own)."""


async def init_connection(conn: Connection, role: Role | None = None) -> None:
    """What every connection gets: its role, and json and jsonb as Python objects."""
    if role is not None:
        if role not in ROLES:
            raise ValueError(f"not a role of this platform: {role!r}")
        await conn.execute(f"SET ROLE {role}")
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def server_settings(statement_timeout_ms: int, role: Role | None = None) -> dict[str, str]:
    return {
        # pg_stat_activity shows each connection's surface (its role is set after connecting)
        "application_name": "feedback" if role is None else role.replace("_", ":"),
        "statement_timeout": str(statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(max(statement_timeout_ms * 2, 60_000)),
        "timezone": "UTC",
    }


@contextlib.asynccontextmanager
async def create_pool(
    url: str, *, role: Role | None, statement_timeout_ms: int = 5000, max_size: int = 10
) -> AsyncIterator[Pool]:
    """A pool whose every connection takes ``role`` (None: the login's own, for set-up work
    such as migrations and the demo's seed)."""
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            server_settings=server_settings(statement_timeout_ms, role),
            init=functools.partial(init_connection, role=role),
            reset=keep_session,
        )
    except ROLE_ERRORS as exc:
        raise _no_role(url, role, exc) from None
    except BaseException as exc:
        raise _unavailable(url, exc) from None
    try:
        yield pool
    finally:
        await pool.close()


async def connect(
    url: str, *, role: Role | None = None, statement_timeout_ms: int = 60_000
) -> Connection:
    """One connection outside any pool (with ``role``, as ``create_pool``)."""
    try:
        conn = await asyncpg.connect(
            url,
            timeout=CONNECT_TIMEOUT_S,
            server_settings=server_settings(statement_timeout_ms, role),
        )
    except BaseException as exc:
        raise _unavailable(url, exc) from None
    try:
        await init_connection(conn, role)
    except ROLE_ERRORS as exc:
        await conn.close()
        raise _no_role(url, role, exc) from None
    return conn


# What SET ROLE raises for a role that is missing or that the login may not take.
ROLE_ERRORS = (asyncpg.InvalidParameterValueError, asyncpg.InsufficientPrivilegeError)


def _no_role(url: str, role: Role | None, exc: BaseException) -> BaseException:
    login = urlsplit(url).username or "this login"
    return DatabaseUnavailable(
        f"the database login {login} cannot take the role {role} ({exc}): run `feedback "
        f"migrate` as the schema's owner (it creates the roles), then, as the owner or a "
        f"superuser: GRANT {role} TO {login}"
    )


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
