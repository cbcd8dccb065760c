"""A fresh, migrated database for a benchmark run: on the server at 127.0.0.1:5432 when one
answers (or FEEDBACK_BENCH_ADMIN_URL), else on an embedded PostgreSQL; dropped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from feedback.db import connect, with_database
from feedback.embedded import embedded_postgres
from feedback.errors import DatabaseUnavailable
from feedback.migrate import apply_migrations

SERVER = os.environ.get("FEEDBACK_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _admin(url: str, statement: str) -> None:
    conn = await connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    conn = await connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


@contextlib.contextmanager
def _admin_url() -> Iterator[str]:
    try:
        asyncio.run(_admin(SERVER, "SELECT 1"))
        yield SERVER
    except DatabaseUnavailable:
        with tempfile.TemporaryDirectory() as tmp, embedded_postgres(Path(tmp)) as url:
            yield url


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    name = f"feedback_bench_{uuid.uuid4().hex[:10]}"
    with _admin_url() as admin:
        asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
        try:
            url = with_database(admin, name)
            asyncio.run(_migrate(url))
            yield url
        finally:
            asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
