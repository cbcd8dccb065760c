"""docs/operations.md's production set-up: a schema owner that is no superuser runs the
migrations, then each kind of process connects as a login that is a member of its own role
only. On the test server and on a fresh PostgreSQL 16 (the embedded one), where a role's
creator gets only the right to administer it unless it asks for more."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from feedback.db import with_database
from feedback.embedded import embedded_postgres
from feedback.exposure import WITHHOLD_SQL
from tests.cli import run_feedback
from tests.live import LiveServer

pytestmark = pytest.mark.slow


def as_login(url: str, user: str, database: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}", path=f"/{database}"))


@contextlib.contextmanager
def server(kind: str, admin_url: str, tmp_path: Path) -> Iterator[str]:
    if kind == "test":
        yield admin_url
        return
    (tmp_path / "pg16").mkdir()
    with embedded_postgres(tmp_path / "pg16") as url:
        yield url


def feedback(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_feedback(*args, database_url=url)


@pytest.mark.parametrize("kind", ["test", "embedded"])
async def test_each_surface_runs_as_a_login_of_its_role_only(
    kind: str, admin_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    owner, database = f"fb_owner_{tag}", f"fb_prod_{tag}"
    logins = {
        "survivor": f"fb_survivor_{tag}",
        "staff": f"fb_staff_{tag}",
        "worker": f"fb_worker_{tag}",
    }
    with server(kind, admin_url, tmp_path) as root_url:
        root = await asyncpg.connect(root_url)
        try:
            await root.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE")
            await root.execute(f"CREATE DATABASE {database} OWNER {owner}")
            migrated = feedback(as_login(root_url, owner, database), "migrate")
            assert migrated.returncode == 0, migrated.stderr
            # The owner cannot withhold the catalogs' statistics: a superuser runs the file
            # it names, as docs/operations.md says (the staff app would refuse to start).
            assert "only a superuser can withhold them" in migrated.stderr
            withheld = await asyncpg.connect(with_database(root_url, database))
            try:
                await withheld.execute(WITHHOLD_SQL.read_text())
            finally:
                await withheld.close()
            again = feedback(as_login(root_url, owner, database), "migrate")
            # Only the statistics warning goes (this machine's server may run without
            # autovacuum, which migrate rightly warns about too).
            assert again.returncode == 0, again.stderr
            assert "withhold" not in again.stderr, again.stderr
            owned = await asyncpg.connect(as_login(root_url, owner, database))
            try:  # as docs/operations.md says, run by the schema's owner
                for surface, login in logins.items():
                    await owned.execute(f"CREATE ROLE {login} LOGIN IN ROLE feedback_{surface}")
            finally:
                await owned.close()
            url = {s: as_login(root_url, login, database) for s, login in logins.items()}
            worker = await asyncpg.connect(url["worker"])
            try:  # the owner's function, which reads a size the owner was given back
                assert await worker.fetchval("SELECT submission_blocks()") == 0
            finally:
                await worker.close()

            listed = feedback(url["worker"], "jobs", "list")
            assert listed.returncode == 0, listed.stderr
            assert "mix-submissions" in listed.stdout
            for surface, health in (("survivor", "/healthz"), ("staff", "/staff/healthz")):
                live = LiveServer(url[surface], tmp_path / f"{surface}.log", app=surface)
                try:
                    async with httpx.AsyncClient(timeout=5) as client:
                        answer = await client.get(live.base_url + health)
                finally:
                    log = live.stop()
                assert answer.status_code == 200, log
                assert "Traceback" not in log

            survivor = await asyncpg.connect(url["survivor"])
            try:  # even without SET ROLE, the login can do no more than its role
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await survivor.fetch("SELECT * FROM releases")
            finally:
                await survivor.close()
            refused = feedback(url["staff"], "jobs", "list")  # the staff login is no worker
            assert refused.returncode == 1
            assert f"GRANT feedback_worker TO {logins['staff']}" in refused.stderr
            assert "Traceback" not in refused.stderr
        finally:
            await root.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            for login in (*logins.values(), owner):
                await root.execute(f"DROP ROLE IF EXISTS {login}")
            await root.close()
