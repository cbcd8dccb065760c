from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from feedback.cli import build_web_app
from feedback.collect.app import create_app as create_survivor_app
from feedback.config import Settings
from feedback.db import SURVIVOR, Pool, create_pool
from feedback.secretfiles import ServiceSecrets
from tests.asgi import client_for

SECRETS = ServiceSecrets(
    session=b"s" * 32, phone_hmac=b"p" * 32, sms_code_key=b"c" * 32, sms_auth_token=b"t" * 32
)


def settings_for(database_url: str) -> Settings:
    return replace(Settings.from_env({}), database_url=database_url)


@pytest.fixture
async def client(
    survivor_pool: Pool, staff_pool: Pool, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_web_app(
        settings_for(database_url), SECRETS, survivor_pool=survivor_pool, staff_pool=staff_pool
    )
    async with client_for(app) as c:
        yield c


async def test_healthz_reports_the_database(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/staff/healthz"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/staff/healthz", "/no-such-page"):
        response = await client.get(path)
        csp = response.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "http" not in csp  # no third-party origins
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "geolocation=()" in response.headers["permissions-policy"]
        assert "camera=()" in response.headers["permissions-policy"]
        assert response.headers["cache-control"] == "no-store"
        assert "server" not in response.headers
        assert "set-cookie" not in response.headers


async def test_https_deployments_get_hsts(survivor_pool: Pool, database_url: str) -> None:
    settings = replace(settings_for(database_url), public_url="https://feedback.example.org")
    async with client_for(create_survivor_app(settings, SECRETS, pool=survivor_pool)) as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_access_log_has_route_but_no_address_or_query(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="feedback.access")
    await client.get("/staff/healthz?token=SECRETTOKEN", headers={"X-Forwarded-For": "203.0.113.9"})
    await client.get("/staff/not/a/route/SECRETPATH")
    # The survivor app writes no line for a request that did not fail: its time would date a
    # survivor's visit.
    await client.get("/healthz")
    await client.get("/s/AAAAAAAAAAAAAAAAAAAAAA")
    lines = [r.getMessage() for r in caplog.records if r.name == "feedback.access"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("GET /staff/healthz 200 ")
    assert lines[1].startswith("GET (unmatched) 404 ")
    text = "\n".join(lines)
    for leak in ("127.0.0.1", "203.0.113.9", "SECRETTOKEN", "SECRETPATH"):
        assert leak not in text


async def test_healthz_answers_503_while_the_database_is_down(
    admin_url: str, database_url: str
) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    settings = settings_for(database_url)
    async with (
        create_pool(database_url, role=SURVIVOR, max_size=2) as pool,
        client_for(create_survivor_app(settings, SECRETS, pool=pool)) as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        admin = await asyncpg.connect(admin_url)
        try:
            # Take the database away: refuse new connections and end the open ones.
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )
            down = await client.get("/healthz")
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            back = await client.get("/healthz")
        finally:
            await admin.close()
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable", "database": "unreachable"}
    assert back.status_code == 200


async def test_statement_timeout_applies_to_pool_connections(database_url: str) -> None:
    async with (
        create_pool(database_url, role=SURVIVOR, statement_timeout_ms=200, max_size=2) as pool,
        pool.acquire() as conn,
    ):
        assert await conn.fetchval("SHOW statement_timeout") == "200ms"
        with pytest.raises(asyncpg.QueryCanceledError):
            await conn.execute("SELECT pg_sleep(2)")


async def test_request_body_limit(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz", content=b"x" * (65 * 1024))
    assert response.status_code in (405, 413)
