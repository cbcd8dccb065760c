"""What every long-running command needs: a usable database, signals, a listening socket."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator

import asyncpg
import uvicorn
from starlette.types import ASGIApp

from feedback.config import Settings
from feedback.db import STAFF, Connection, Pool, Role, connect, create_pool, ensure_database, redact
from feedback.embedded import embedded_postgres
from feedback.errors import FeedbackError, PortInUse
from feedback.exposure import (
    readable_statistics,
    summary,
    withhold_command,
    withhold_statistics,
)
from feedback.migrate import apply_migrations, pending
from feedback.secretfiles import prepare_data_dir

EMBEDDED_DATABASE = "feedback"
log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """The database URL to use: the configured one, or else that of an embedded PostgreSQL
    started in the data directory and stopped when the block exits."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    data_dir = prepare_data_dir(settings.data_dir)
    with embedded_postgres(data_dir) as admin_url:
        yield await ensure_database(admin_url, EMBEDDED_DATABASE)


@contextlib.asynccontextmanager
async def ready_pool(
    settings: Settings, *, role: Role | None, migrate_first: bool = False
) -> AsyncIterator[Pool]:
    """A pool (its connections in ``role``) on a database whose schema is up to date: migrated
    here when ``migrate_first``, otherwise refused with a pointer to ``feedback migrate``."""
    async with ready_database(settings, role=role, migrate_first=migrate_first) as (_, pool):
        yield pool


@contextlib.asynccontextmanager
async def ready_database(
    settings: Settings, *, role: Role | None, migrate_first: bool = False
) -> AsyncIterator[tuple[str, Pool]]:
    """``ready_pool``, with the database URL (for worker processes' own connections)."""
    async with database(settings) as url:
        await check_schema(url, role=role, migrate_first=migrate_first)
        async with create_pool(
            url,
            role=role,
            statement_timeout_ms=settings.statement_timeout_ms,
            max_size=settings.pool_size,
        ) as pool:
            yield url, pool


async def check_schema(url: str, *, role: Role | None, migrate_first: bool) -> None:
    """Migrate (when ``migrate_first``, as the login's own role), or refuse a database that
    lacks migrations (checked in ``role``); warn about server settings that would undo what
    the schema promises."""
    conn = await connect(url, role=None if migrate_first else role)
    try:
        if migrate_first:
            await apply_migrations(conn)
            await withhold_statistics(conn)
        try:
            todo = await pending(conn)
        except asyncpg.InsufficientPrivilegeError:
            raise FeedbackError(
                f"the database login of {redact(url)} may not read the schema's version: run "
                "`feedback migrate` as the schema's owner first (it grants what each role "
                "needs)"
            ) from None
        for warning in await server_warnings(conn):
            log.warning(warning)
    finally:
        await conn.close()
    if todo:
        raise FeedbackError(
            f"the database is missing {len(todo)} migration(s), starting with "
            f"{todo[0].filename}: run `feedback migrate` first"
        )


# The tables whose old row versions keep survivors' transaction ids until vacuumed.
VACUUMED = ("submissions", "invitations", "sms_sessions")


async def server_warnings(conn: Connection) -> list[str]:
    """One line for each server setting that would undo what the schema promises: commit
    times recorded, or the old row versions a mix, a spent token or an ended SMS conversation
    leaves behind (which keep their transaction ids) never vacuumed."""
    found = await conn.fetchrow(
        r"""
        SELECT current_setting('track_commit_timestamp')::boolean AS commit_times,
               current_setting('autovacuum')::boolean AS autovacuum,
               current_setting('track_counts')::boolean AS track_counts,
               ARRAY(SELECT c.relname::text
                       FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
                      WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1)
                        AND EXISTS (SELECT 1 FROM unnest(c.reloptions || t.reloptions) o
                                     WHERE o LIKE 'autovacuum\_enabled=%'
                                       AND NOT split_part(o, '=', 2)::boolean)
                      ORDER BY c.relname) AS skipped
        """,
        list(VACUUMED),
    )
    if found is None:  # one row, always
        return []
    warnings = []
    if found["commit_times"]:
        warnings.append(
            "PostgreSQL's track_commit_timestamp is on: it records when every transaction "
            "committed, which dates each answer to the second. Turn it off "
            "(ALTER SYSTEM SET track_commit_timestamp = off, then restart PostgreSQL)."
        )
    if not (found["autovacuum"] and found["track_counts"]):
        off = "autovacuum is off" if not found["autovacuum"] else "track_counts is off"
        setting = "autovacuum" if not found["autovacuum"] else "track_counts"
        warnings.append(
            f"PostgreSQL's {off}, so autovacuum never runs: the old row versions that a mix, "
            "a spent token or an ended SMS conversation leaves behind keep their transaction "
            "ids, which order and date answers, in the data files. Turn it on "
            f"(ALTER SYSTEM SET {setting} = on; SELECT pg_reload_conf())."
        )
    if found["skipped"]:
        tables = ", ".join(found["skipped"])
        warnings.append(
            f"autovacuum is disabled on {tables} (storage parameter autovacuum_enabled): the "
            "old row versions left there keep their transaction ids, which order and date "
            f"answers. Turn it back on (ALTER TABLE {found['skipped'][0]} RESET "
            "(autovacuum_enabled, toast.autovacuum_enabled), for each)."
        )
    return warnings


async def check_statistics(url: str, settings: Settings) -> None:
    """Refuse to serve the staff app while its role can read statistics that move with
    answers (feedback/exposure.py), unless the operator accepted it, which is warned about."""
    conn = await connect(url, role=STAFF)
    try:
        left = await readable_statistics(conn)
        wider = await conn.fetchval(
            """
            SELECT rolname FROM pg_roles
             WHERE rolname = session_user
               AND (rolsuper OR pg_has_role(session_user, 'pg_read_all_stats', 'MEMBER')
                    OR pg_has_role(session_user, 'feedback_worker', 'MEMBER')
                    OR pg_has_role(session_user, 'feedback_survivor', 'MEMBER'))
            """
        )
    finally:
        await conn.close()
    if wider:
        log.warning(
            "the staff app's database login %s may take other roles than %s (RESET ROLE), "
            "with what they read: give it a login of its own (docs/operations.md, Database "
            "logins)",
            wider,
            STAFF,
        )
    if not left:
        return
    if settings.accept_visible_statistics:
        log.warning(
            "FEEDBACK_ACCEPT_VISIBLE_STATISTICS is set: the staff app's role %s can read "
            "statistics that move with answers (%s), so whoever holds its database login can "
            "time each answer",
            STAFF,
            summary(left),
        )
        return
    raise FeedbackError(
        f"the staff app's role {STAFF} can read statistics that move with answers "
        f"({summary(left)}), which time each answer: have a superuser run "
        f"`{withhold_command(url)}`. "
        "Where none can (a managed PostgreSQL), set FEEDBACK_ACCEPT_VISIBLE_STATISTICS=true "
        "to start anyway (docs/operations.md, Statistics)"
    )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM, so that every command shuts down cleanly (and the
    embedded database is stopped) however it is asked to stop."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        yield stopping
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts, so that a busy port is
    reported in one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is already in use: stop the program using it or set "
                "FEEDBACK_PORT to another port"
            ) from None
        raise PortInUse(
            f"cannot listen on {host}:{port} ({exc.strerror}): set FEEDBACK_HOST and FEEDBACK_PORT"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn, but signals are ours (see ``stop_on_signals``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: ASGIApp, sock: socket.socket, stopping: asyncio.Event) -> None:
    """Serve ``app`` on ``sock`` until ``stopping`` is set. No access log of the server's own,
    no Server header, no proxy headers: the application logs requests, without addresses."""
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
    )
    server = _Server(config)
    # Everything imported and built so far lives as long as the process: keep it out of the
    # cyclic collector's full passes, which otherwise stall the loop for tens of milliseconds.
    gc.freeze()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    waiter = asyncio.create_task(stopping.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    waiter.cancel()
    await task
    if not server.started:
        raise SystemExit("the web application failed to start; see the log above")
