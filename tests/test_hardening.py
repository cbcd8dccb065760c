"""What one anonymous client may cost, in-process: waits for a connection are bounded, a busy
or unreachable database is a 503 that says nothing was saved (with the answers kept to send
again), every response carries the security headers, and rate limits count only what is
real and read the client behind a trusted proxy."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from feedback import web
from feedback.cli.wiring import build_web_app
from feedback.collect.app import create_app
from feedback.config import Settings
from feedback.db import SURVIVOR, Connection, Pool, create_pool
from feedback.publish.invitations import create_batch, create_open_link
from feedback.web import ACQUIRE_TIMEOUT_S, RETRY_AFTER_S, client_address
from tests import factories
from tests.asgi import client_for
from tests.collect.conftest import SECRETS
from tests.collect.test_survey_pages import ANSWERS, sealed_post

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")


def settings_for(database_url: str, **changes: object) -> Settings:
    return replace(Settings.from_env({}), database_url=database_url, **changes)  # type: ignore[arg-type]


async def test_a_survivor_page_waits_a_bounded_time_for_a_connection(
    conn: Connection, database_url: str
) -> None:
    keyed = await factories.keyed_tenant(conn)
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=1)
    async with create_pool(database_url, role=SURVIVOR, max_size=2) as pool:
        app = create_app(settings_for(database_url), SECRETS, pool=pool)
        async with client_for(app, raise_app_exceptions=False) as client:
            held = [await pool.acquire(), await pool.acquire()]  # every connection taken
            try:
                started = asyncio.get_running_loop().time()
                page = await client.get(f"/s/{batch.tokens[0]}")
                waited = asyncio.get_running_loop().time() - started
                posted = await client.post(f"/s/{batch.tokens[0]}?lang=es", data=ANSWERS)
            finally:
                for one in held:
                    await pool.release(one)
            answered = await client.post(f"/s/{batch.tokens[0]}", data=ANSWERS)
    assert page.status_code == 503
    assert page.headers["retry-after"] == str(RETRY_AFTER_S)
    assert "Nothing was saved" in page.text
    assert "data-quick-exit" in page.text
    assert ACQUIRE_TIMEOUT_S - 0.5 < waited < ACQUIRE_TIMEOUT_S + 2
    # A post that cannot be stored keeps the answers, in a form that sends them again.
    assert posted.status_code == 503
    assert "No se guardó nada" in posted.text
    assert 'name="q.believed" value="5"' in posted.text
    assert 'data-retry="20"' in posted.text
    assert answered.status_code == 200  # once a connection is free, it is stored
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1  # that one only


async def test_while_the_database_is_away_posts_get_their_answers_back(
    conn: Connection, admin_url: str, database_url: str
) -> None:
    keyed = await factories.keyed_tenant(conn)
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=2)
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(admin_url)
    try:
        async with create_pool(database_url, role=SURVIVOR, max_size=2) as pool:
            app = create_app(settings_for(database_url), SECRETS, pool=pool)
            async with client_for(app, raise_app_exceptions=False) as client:
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    name,
                )
                sealed = await client.post(f"/s/{batch.tokens[0]}", data=sealed_post(keyed))
                plain = await client.post(f"/s/{batch.tokens[1]}", data=ANSWERS)
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                again = await client.post(f"/s/{batch.tokens[0]}", data=sealed_post(keyed))
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    for response in (sealed, plain):
        assert response.status_code == 503
        assert "Nothing was saved" in response.text
        assert response.headers["retry-after"] == str(RETRY_AFTER_S)
        for header in SECURITY_HEADERS:
            assert header in response.headers
    box = sealed_post(keyed)["key_id"]
    assert f'name="key_id" value="{box}"' in sealed.text  # the sealed box, to send again
    assert again.status_code == 200  # the service came back by itself


async def test_every_response_carries_the_security_headers_errors_included(
    conn: Connection, survivor_pool: Pool, staff_pool: Pool, database_url: str
) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = f"/s/{(await create_batch(conn, program_id=keyed.tenant.program_id, count=1)).tokens[0]}"
    app = build_web_app(
        settings_for(database_url), SECRETS, survivor_pool=survivor_pool, staff_pool=staff_pool
    )
    async with client_for(app, raise_app_exceptions=False) as client:
        too_big = await client.post(url, data={"comment": "x" * (40 * 1024)})
        # A real refusal (the function that stores a no-JavaScript post): a server error.
        storing = "store_submission(bytea, text, bytea, bytea)"
        await conn.execute(f"REVOKE EXECUTE ON FUNCTION {storing} FROM feedback_survivor")
        try:
            broken = await client.post(url, data=ANSWERS)
        finally:
            await conn.execute(f"GRANT EXECUTE ON FUNCTION {storing} TO feedback_survivor")
        missing = await client.get("/staff/no/such/page")
        bare = await client.get("/staff")  # the address people type: to the staff app's home
    assert (too_big.status_code, broken.status_code, missing.status_code) == (413, 500, 404)
    assert (bare.status_code, bare.headers["location"]) == (308, "/staff/")
    for response in (too_big, broken, missing, bare):
        for header in SECURITY_HEADERS:
            assert header in response.headers, (response.status_code, header)
        assert response.headers["cache-control"] == "no-store"


async def test_a_client_that_leaves_mid_body_is_no_server_error(
    survivor_pool: Pool, staff_pool: Pool, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_web_app(
        settings_for(database_url), SECRETS, survivor_pool=survivor_pool, staff_pool=staff_pool
    )
    arriving: list[Message] = [
        {"type": "http.request", "body": b"email=a%40b.org&pass", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return arriving.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"400"),
    ]
    async with app.router.lifespan_context(app) as state:
        for path in ("/staff/login", "/withdraw"):
            arriving[:] = arriving or [
                {"type": "http.request", "body": b"code=AB", "more_body": True},
                {"type": "http.disconnect"},
            ]
            scope = {
                "type": "http",
                "method": "POST",
                "path": path,
                "raw_path": path.encode(),
                "root_path": "",
                "query_string": b"",
                "headers": headers,
                "client": ("127.0.0.1", 40000),
                "server": ("127.0.0.1", 8000),
                "scheme": "http",
                "http_version": "1.1",
                "state": dict(state or {}),
            }
            await app(scope, receive, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [400, 400]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def request_from(peer: str, forwarded: str | list[str] | None, trusted: str) -> Request:
    lines = [forwarded] if isinstance(forwarded, str) else forwarded or []
    headers = [(b"x-forwarded-for", line.encode()) for line in lines]
    settings = Settings.from_env({"FEEDBACK_TRUSTED_PROXIES": trusted})
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": headers,
            "client": (peer, 40000),
            "state": {"settings": settings},
        }
    )


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "seen"),
    [
        ("203.0.113.9", None, "", "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "", "203.0.113.9"),  # no proxy trusted: header ignored
        ("127.0.0.1", "198.51.100.1", "127.0.0.1", "198.51.100.1"),
        ("10.0.0.5", "6.6.6.6, 198.51.100.1, 10.0.0.4", "10.0.0.0/8", "198.51.100.1"),
        ("203.0.113.9", "198.51.100.1", "127.0.0.1", "203.0.113.9"),  # peer is no proxy
        ("127.0.0.1", "not an address", "127.0.0.1", "not an address"),
        ("127.0.0.1", None, "127.0.0.1", "127.0.0.1"),
        # a proxy that adds a line of its own: every line is read, the client's forgery first
        ("127.0.0.1", ["6.6.6.6", "198.51.100.1"], "127.0.0.1", "198.51.100.1"),
        ("::ffff:127.0.0.1", "198.51.100.1", "127.0.0.1", "198.51.100.1"),  # dual-stack socket
        ("2001:db8:0:1::7", None, "", "2001:db8:0:1::/64"),  # an IPv6 client is its /64
        ("127.0.0.1", "2001:db8:0:1:abcd::9", "127.0.0.1", "2001:db8:0:1::/64"),
    ],
)
def test_the_client_behind_a_trusted_proxy_is_the_one_rate_limits_see(
    peer: str, forwarded: str | None, trusted: str, seen: str
) -> None:
    assert client_address(request_from(peer, forwarded, trusted)) == seen


async def test_junk_posts_fill_no_limit_and_posters_are_limited_per_client(
    conn: Connection, database_url: str, survivor_pool: Pool
) -> None:
    keyed = await factories.keyed_tenant(conn)
    poster = f"/s/{await create_open_link(conn, program_id=keyed.tenant.program_id)}"
    proxied = Settings.from_env({"FEEDBACK_TRUSTED_PROXIES": "127.0.0.1"}).trusted_proxies
    app = create_app(
        settings_for(database_url, trusted_proxies=proxied), SECRETS, pool=survivor_pool
    )
    async with app.router.lifespan_context(app) as state:

        async def asgi(scope, receive, send):
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=asgi, client=("127.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            for _ in range(40):  # junk: unknown tokens, counted nowhere
                assert (await c.post("/s/AAAAAAAAAAAAAAAAAAAAAA", data=ANSWERS)).status_code == 404
            first = {"x-forwarded-for": "198.51.100.1"}
            statuses = [
                (await c.post(poster, data=ANSWERS, headers=first)).status_code for _ in range(6)
            ]
            other = await c.post(poster, data=ANSWERS, headers={"x-forwarded-for": "198.51.100.2"})
            # A burst in parallel is limited like posts one after another.
            burst = await asyncio.gather(
                *(
                    c.post(poster, data=ANSWERS, headers={"x-forwarded-for": "198.51.100.3"})
                    for _ in range(12)
                )
            )
            codes = [
                (await c.post("/withdraw", data={"code": "0000-0000-0001"})).status_code
                for _ in range(6)
            ]
            another = await c.post("/withdraw", data={"code": "0000-0000-0002"})
    assert statuses == [200] * 5 + [429]  # five stored per client, then refused
    assert other.status_code == 200  # another survivor behind the same proxy is not
    assert sorted(r.status_code for r in burst) == [200] * 5 + [429] * 7
    assert codes == [404] * 5 + [429]  # one receipt code: five tries
    assert another.status_code == 404  # other codes are still tried
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 11


@pytest.mark.parametrize(
    ("declared", "chunks", "allowed", "refusal"),
    [
        (None, 0, 0.2, web.SlowBody),  # nothing sent: the base deadline
        (b"640", 0, 0.2, web.SlowBody),  # declaring a length buys no time
        (b"500", 1, 0.4, web.SlowBody),  # a second more per BODY_RATE bytes sent, then stalls
        (b"500", 5, 0.75, None),  # slow but steady: 100 bytes every 0.15 s, all read
        (b"641", 0, 0.0, web.BodyTooLarge),  # more than the app takes: refused at once
        (b"9" * 40, 0, 0.0, web.BodyTooLarge),
        (b"junk", 0, 0.2, web.SlowBody),
    ],
)
async def test_a_body_must_keep_arriving_and_stay_under_the_cap(
    monkeypatch: pytest.MonkeyPatch,
    declared: bytes | None,
    chunks: int,
    allowed: float,
    refusal: type[Exception] | None,
) -> None:
    monkeypatch.setattr(web, "BODY_DEADLINE_S", 0.2)
    monkeypatch.setattr(web, "BODY_RATE", 500)
    read: list[bytes] = []

    async def reads_the_body(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            read.append(message.get("body", b""))
            if not message.get("more_body"):
                return

    edge = web.Edge(reads_the_body, max_body=640)
    headers = [(b"content-length", declared)] if declared else []
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    sent = 0

    async def client() -> Message:
        nonlocal sent
        if sent < chunks:
            await asyncio.sleep(0.15)
            sent += 1
            last = sent == chunks and refusal is None  # else it stalls after its chunks
            return {"type": "http.request", "body": b"x" * 100, "more_body": not last}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    started = asyncio.get_running_loop().time()
    if refusal is None:
        await edge(scope, client, lambda message: asyncio.sleep(0))
        assert len(b"".join(read)) == 500
    else:
        with pytest.raises(refusal):
            await edge(scope, client, lambda message: asyncio.sleep(0))
    took = asyncio.get_running_loop().time() - started
    assert allowed - 0.05 < took < allowed + 0.3


async def test_an_untrusted_proxy_is_named_once_from_staff_requests_only(
    conn: Connection,
    survivor_pool: Pool,
    staff_pool: Pool,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web, "_WARNED", [])
    keyed = await factories.keyed_tenant(conn)
    poster = f"/s/{await create_open_link(conn, program_id=keyed.tenant.program_id)}"
    app = build_web_app(
        settings_for(database_url), SECRETS, survivor_pool=survivor_pool, staff_pool=staff_pool
    )
    proxied = {"x-forwarded-for": "198.51.100.1"}
    async with client_for(app) as client:
        assert (await client.post(poster, data=ANSWERS, headers=proxied)).status_code == 200
        assert (await client.post("/withdraw", data={"code": "x"}, headers=proxied)).is_error
        # A line at a survivor's request would date it: nothing is said there.
        assert not [r for r in caplog.records if r.name == "feedback.web"]
        for _ in range(2):
            await client.post(
                "/staff/login", data={"email": "a@b.org", "password": "x"}, headers=proxied
            )
    warned = [r for r in caplog.records if r.name == "feedback.web"]
    assert len(warned) == 1
    assert "FEEDBACK_TRUSTED_PROXIES" in warned[0].getMessage()
