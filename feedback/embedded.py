"""An embedded PostgreSQL for when no database URL is given.

``pgserver`` bundles a PostgreSQL 16 build. The server listens on a Unix socket inside
``DATA_DIR/postgres`` only (no TCP port), and is stopped when the context exits. Run as root,
pgserver starts the server as a ``pgserver`` system user and makes the data directory's parents
traversable (g+rx, o+rx) for it; the secrets folder keeps mode 0700.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from feedback.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) the server in ``data_dir/postgres``; yield its admin URL; stop it."""
    server = _start(data_dir / "postgres")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        log.info("embedded PostgreSQL stopped")


def _start(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        # A 0.1 s import, needed only without a database URL; untyped, hence Any.
        pgserver: Any = importlib.import_module("pgserver")

    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except (OSError, subprocess.SubprocessError, RuntimeError, AssertionError) as exc:
        raise DatabaseUnavailable(
            f"cannot start the embedded PostgreSQL in {pgdata} ({exc}): see {pgdata / 'log'}, "
            "or set FEEDBACK_DATABASE_URL to use a PostgreSQL server"
        ) from None
    log.info("embedded PostgreSQL running in %s", pgdata)
    return server
