"""The second gateway, Vonage: a signed inbound webhook, and replies sent through its SMS API
(to a fake that speaks that API's wire format, since the real one cannot be reached here). The
conversation code is the same: the interface is not Twilio-shaped."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from feedback.collect.app import create_app
from feedback.collect.sms.gateways import vonage_signature, vonage_signed_text
from feedback.config import Settings
from feedback.db import Connection, Pool
from tests.collect.conftest import SECRETS
from tests.collect.test_sms import opened, sms_code, sms_tenant

URL = "http://127.0.0.1:8000/sms/vonage"
SIGNATURE_SECRET = b"vonage-signature-secret-0123456789"
_ids = itertools.count()


class FakeVonageApi:
    """POST /sms/json as Vonage answers it (form in, JSON out)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/sms/json"
        form = dict(urllib.parse.parse_qsl(request.content.decode()))
        if (form.get("api_key"), form.get("api_secret")) != ("key", "secret"):
            return httpx.Response(
                200,
                json={
                    "message-count": "1",
                    "messages": [{"status": "4", "error-text": "Bad Credentials"}],
                },
            )
        self.sent.append(form)
        return httpx.Response(
            200,
            json={
                "message-count": "1",
                "messages": [
                    {
                        "to": form["to"],
                        "message-id": f"0A{len(self.sent):014d}",
                        "status": "0",
                        "remaining-balance": "3.14",
                        "message-price": "0.03",
                        "network": "12345",
                    }
                ],
            },
        )


@pytest.fixture
def api() -> FakeVonageApi:
    return FakeVonageApi()


@pytest.fixture
async def vonage(
    survivor_pool: Pool, database_url: str, api: FakeVonageApi
) -> AsyncIterator[httpx.AsyncClient]:
    settings = replace(
        Settings.from_env({}),
        database_url=database_url,
        vonage=("key", "secret", SIGNATURE_SECRET, "https://rest.nexmo.com"),
    )
    app = create_app(settings, SECRETS, pool=survivor_pool, sms_transport=httpx.MockTransport(api))
    async with app.router.lifespan_context(app) as state:

        async def asgi(scope, receive, send):
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1:8000"
        ) as client:
            yield client


def signed(text: str, *, sender: str = "15550104477", sent: float | None = None) -> dict[str, str]:
    when = time.time() if sent is None else sent
    params = {
        "msisdn": sender,
        "to": "15550009999",
        "messageId": f"1600000{next(_ids):010d}",
        "text": text,
        "type": "text",
        "keyword": text.split(" ")[0].upper() if text else "",
        "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when)),
        "timestamp": str(int(when)),
        "nonce": "b3b8a7e0-2c4f-4f8e-9f4e-7d1c2b3a4d5e",
    }
    return {**params, "sig": vonage_signature(SIGNATURE_SECRET, params)}


def test_the_signed_text_is_vonage_s() -> None:
    # The vector of Vonage's own Python SDK tests (md5hash method, secret "secret").
    params = {"a": "1", "b": "2", "timestamp": "1461605396", "sig": "ignored"}
    digest = hashlib.md5(  # noqa: S324 - Vonage's legacy method, for the vector only
        (vonage_signed_text(params) + "secret").encode()
    ).hexdigest()
    assert digest == "6af838ef94998832dbfc29020b564830"


async def test_a_conversation_through_vonage(
    conn: Connection, vonage: httpx.AsyncClient, api: FakeVonageApi
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    code = await sms_code(conn, keyed)
    first = await vonage.post(URL, data=signed(code))
    assert first.status_code == 204
    assert api.sent[-1]["to"] == "15550104477"
    assert api.sent[-1]["text"].startswith("1/6 Staff believed me.")
    assert "type" not in api.sent[-1]  # GSM-7: no unicode flag
    for answer in ("5", "5", "4", "0", "3", "2"):
        response = await vonage.post(URL, data=signed(answer))
        assert response.status_code == 204
    assert api.sent[-1]["text"].startswith("Thank you")
    envelope = opened(keyed, await conn.fetchval("SELECT ciphertext FROM submissions"))
    assert dict(envelope.answers) == {
        "believed": 5,
        "respected": 5,
        "safe_services": 4,
        "trust_help": 3,
        "recommend": 2,
    }
    assert await conn.fetchval("SELECT channel FROM submissions") == "sms"
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0


async def test_a_wrong_sig_is_refused_and_nothing_is_sent(
    conn: Connection, vonage: httpx.AsyncClient, api: FakeVonageApi
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    params = signed(await sms_code(conn, keyed))
    for bad in (
        {**params, "text": "0000000000"},
        {**params, "sig": "0" * 64},
        {k: v for k, v in params.items() if k != "sig"},
    ):
        assert (await vonage.post(URL, data=bad)).status_code == 403
    assert api.sent == []
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0
    stopped = await vonage.post(URL, data=signed("STOP"))
    assert stopped.status_code == 204
    assert api.sent == []  # STOP: nothing is sent


async def test_a_gateway_that_is_not_configured_is_404(
    survivor: httpx.AsyncClient,
) -> None:
    assert (await survivor.post(URL, data=signed("HELP"))).status_code == 404
    assert (await survivor.post("http://127.0.0.1:8000/sms/nobody", data={})).status_code == 404


async def test_replays_and_get_webhooks_do_nothing(
    conn: Connection, vonage: httpx.AsyncClient, api: FakeVonageApi
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    code = await sms_code(conn, keyed)
    # A GET would carry the number and the answer in the URL, into every proxy's log.
    assert (await vonage.get(URL, params=signed(code))).status_code == 405
    # A correctly signed message from eleven minutes ago (a replay, past the time the webhook
    # remembers ended conversations): answered, nothing done or sent.
    old = await vonage.post(URL, data=signed(code, sent=time.time() - 660))
    assert old.status_code == 204
    future = await vonage.post(URL, data=signed(code, sent=time.time() + 7200))
    assert future.status_code == 204
    assert api.sent == []
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0
    undated = {k: v for k, v in signed(code).items() if k not in ("timestamp", "sig")}
    undated.pop("message-timestamp")
    undated["sig"] = vonage_signature(SIGNATURE_SECRET, undated)
    assert (await vonage.post(URL, data=undated)).status_code == 400
    fresh = await vonage.post(URL, data=signed(code))
    assert fresh.status_code == 204
    assert api.sent[-1]["text"].startswith("1/6 ")


async def test_a_replayed_message_texts_the_phone_nothing_and_uses_up_no_limit(
    conn: Connection, vonage: httpx.AsyncClient, api: FakeVonageApi
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    help_ = signed("HELP")
    assert (await vonage.post(URL, data=help_)).status_code == 204
    begin = signed(await sms_code(conn, keyed))
    await vonage.post(URL, data=begin)
    answer = signed("5")
    await vonage.post(URL, data=answer)
    texted = len(api.sent)
    assert texted == 3
    # A captured webhook replayed, more often than the number's limit allows messages: the
    # phone gets nothing, the conversation does not move, and the survivor's next answer counts.
    for replayed in [answer] * 30 + [begin, help_]:
        assert (await vonage.post(URL, data=replayed)).status_code == 204
    assert len(api.sent) == texted
    assert await conn.fetchval("SELECT step FROM sms_sessions") == 1
    assert (await vonage.post(URL, data=signed("4"))).status_code == 204
    assert len(api.sent) == texted + 1
    assert api.sent[-1]["text"].startswith("3/6 ")


async def test_copies_of_a_message_at_once_text_the_phone_once(
    conn: Connection, vonage: httpx.AsyncClient, api: FakeVonageApi
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    help_ = signed("HELP")
    await asyncio.gather(*(vonage.post(URL, data=help_) for _ in range(8)))
    assert len(api.sent) == 1
    await vonage.post(URL, data=signed(await sms_code(conn, keyed)))
    for answer in ("5", "5", "4", "0", "3"):
        await vonage.post(URL, data=signed(answer))
    last = signed("2")
    await asyncio.gather(*(vonage.post(URL, data=last) for _ in range(8)))
    assert [m["text"][:9] for m in api.sent[-2:]] == ["6/6 I wou", "Thank you"]
    assert len(api.sent) == 1 + 6 + 1
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
