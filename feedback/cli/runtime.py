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
from feedback.db import Pool, Role, connect, create_pool, ensure_database, redact
from feedback.embedded import embedded_postgres
from feedback.errors import FeedbackError, PortInUse
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
        try:
            todo = await pending(conn)
        except asyncpg.InsufficientPrivilegeError:
            raise FeedbackError(
                f"the database login of {redact(url)} may not read the schema's version: run "
                "`feedback migrate` as the schema's owner first (it grants what each role "
                "needs)"
            ) from None
        if await conn.fetchval("SHOW track_commit_timestamp") == "on":
            log.warning(
                "PostgreSQL's track_commit_timestamp is on: it records when every transaction "
                "committed, which dates each answer to the second. Turn it off "
                "(ALTER SYSTEM SET track_commit_timestamp = off, then restart PostgreSQL)."
            )
    finally:
        await conn.close()
    if todo:
        raise FeedbackError(
            f"the database is missing {len(todo)} migration(s), starting with "
            f"{todo[0].filename}: run `feedback migrate` first"
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
