"""What every long-running command needs: a usable database, signals, a listening socket."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import uvicorn
from starlette.types import ASGIApp

from feedback.config import Settings
from feedback.db import ensure_database
from feedback.embedded import embedded_postgres
from feedback.errors import PortInUse
from feedback.secretfiles import prepare_data_dir

EMBEDDED_DATABASE = "feedback"


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Settings]:
    """``settings`` with a database URL that works: the configured one, or else that of an
    embedded PostgreSQL started in the data directory and stopped when the block exits."""
    if settings.database_url is not None:
        yield settings
        return
    data_dir = prepare_data_dir(settings.data_dir)
    with embedded_postgres(data_dir) as admin_url:
        url = await ensure_database(admin_url, EMBEDDED_DATABASE)
        yield replace(settings, database_url=url)


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
    task = asyncio.create_task(server.serve(sockets=[sock]))
    waiter = asyncio.create_task(stopping.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    waiter.cancel()
    await task
    if not server.started:
        raise SystemExit("the web application failed to start; see the log above")
