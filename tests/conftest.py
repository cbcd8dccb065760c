"""Every test that touches the database gets a fresh one, cloned from a template that the real
migrations built once per session (so migrations are tested by every run).

FEEDBACK_TEST_DATABASE_URL names a server's admin database (for example
postgresql://postgres@127.0.0.1:5432/postgres); without it the session starts an embedded
PostgreSQL in a temporary directory and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from feedback.db import (
    STAFF,
    SURVIVOR,
    WORKER,
    Connection,
    Pool,
    connect,
    create_pool,
    with_database,
)
from feedback.embedded import embedded_postgres
from feedback.exposure import withhold_statistics
from feedback.migrate import apply_migrations


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    given = os.environ.get("FEEDBACK_TEST_DATABASE_URL")
    if given:
        yield given
        return
    with (
        tempfile.TemporaryDirectory(prefix="feedback-test-") as tmp,
        embedded_postgres(Path(tmp)) as url,
    ):
        yield url


async def _admin(admin_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(admin_url)


@pytest.fixture(scope="session")
def template_database(admin_url: str) -> Iterator[str]:
    name = f"feedback_template_{os.getpid()}"

    async def create() -> None:
        admin = await _admin(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
            await close_to_others(admin, name)
        finally:
            await admin.close()
        conn = await asyncpg.connect(with_database(admin_url, name))
        try:
            await apply_migrations(conn)  # as `feedback migrate` does, as a superuser
            await withhold_statistics(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await _admin(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())  # its own loop: no trouble with pytest-asyncio's loop scopes
    yield name
    asyncio.run(drop())


async def copy_database(admin: asyncpg.Connection, name: str, template: str) -> None:
    """A copy of the migrated template, as withheld as it is (a copy has the template's
    catalogs, not its database's own privileges: they are set again)."""
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    await close_to_others(admin, name)


async def close_to_others(admin: asyncpg.Connection, name: str) -> None:
    """What the withholding file leaves a database of the server: no one may connect to it
    but superusers (the tests' logins) and the apps' roles, nor make temporary tables. Each
    test's database is one of the server's, which an app of another test must not reach."""
    await admin.execute(f'REVOKE TEMPORARY, CONNECT ON DATABASE "{name}" FROM PUBLIC')
    roles = await admin.fetchval(
        "SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles "
        "WHERE rolname IN ('feedback_survivor', 'feedback_staff', 'feedback_worker')"
    )
    if roles:
        await admin.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {roles}')


@contextlib.asynccontextmanager
async def fresh_database(
    admin_url: str, prefix: str, *, template: str | None = None
) -> AsyncIterator[str]:
    """A new database (a copy of ``template``, or empty), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await _admin(admin_url)
    try:
        if template:
            await copy_database(admin, name, template)
        else:
            await admin.execute(f'CREATE DATABASE "{name}"')
            await close_to_others(admin, name)
    finally:
        await admin.close()
    try:
        yield with_database(admin_url, name)
    finally:
        admin = await _admin(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest_asyncio.fixture
async def database_url(admin_url: str, template_database: str) -> AsyncIterator[str]:
    """A migrated database of this test's own, dropped afterwards."""
    async with fresh_database(admin_url, "feedback_test", template=template_database) as url:
        yield url


@pytest_asyncio.fixture
async def empty_database_url(admin_url: str) -> AsyncIterator[str]:
    """A database with no schema at all, for testing the migration runner itself."""
    async with fresh_database(admin_url, "feedback_empty") as url:
        yield url


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """The migrations' own login: for setting up what a test needs, never for the code under
    test, which runs in its trust surface's role (the fixtures below)."""
    async with create_pool(database_url, role=None, max_size=5) as pool:
        yield pool


@pytest_asyncio.fixture
async def survivor_pool(database_url: str) -> AsyncIterator[Pool]:
    async with create_pool(database_url, role=SURVIVOR, max_size=5) as pool:
        yield pool


@pytest_asyncio.fixture
async def staff_pool(database_url: str) -> AsyncIterator[Pool]:
    async with create_pool(database_url, role=STAFF, max_size=5) as pool:
        yield pool


@pytest_asyncio.fixture
async def worker_pool(database_url: str) -> AsyncIterator[Pool]:
    async with create_pool(database_url, role=WORKER, max_size=5) as pool:
        yield pool


@pytest_asyncio.fixture
async def worker_conn(database_url: str) -> AsyncIterator[Connection]:
    """A connection in the worker's role, as the worker and the key ceremony have."""
    conn = await connect(database_url, role=WORKER)
    try:
        yield conn
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def conn(database_url: str) -> AsyncIterator[Connection]:
    conn = await connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()
