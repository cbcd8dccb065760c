"""Hostile input, generated: Hypothesis drives the survey form, withdrawal, login,
set-password and both SMS webhooks (signed correctly, so that the fuzzing reaches the
conversation) of a real server, with a fixed budget of examples. No request may be a server
error, and a refused request stores nothing. The harness itself is shown to find a planted
bug."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from feedback.collect.sms.gateways import vonage_signature
from feedback.db import Connection
from feedback.publish.accounts import create_user, make_password_link
from feedback.publish.invitations import create_batch, create_open_link
from tests import factories
from tests.browser import live_site, run_with_connection

pytestmark = pytest.mark.slow

EXAMPLES = 80  # per target: a fixed budget, the same in CI
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
AUTH_TOKEN = "t" * 32
EXAMPLE_NUMBERS = itertools.count(1)
VONAGE_SECRET = "vonage-signature-secret-0123456789"
TO = "+15550009999"

FIELD_NAMES = st.sampled_from(
    [
        "q.believed",
        "q.gender",
        "q.pressured",
        "q.time_in_program",
        "q.nothing",
        "comment",
        "sealed",
        "key_id",
        "code",
        "email",
        "password",
        "again",
        "next",
        "csrf",
        "Body",
        "From",
    ]
) | st.text(max_size=12)
FIELD_VALUES = (
    st.text(max_size=120)
    | st.sampled_from(
        ["5", "0", "-1", "6", "prefer_not", "woman", "", "\u1369", "²", "x" * 3000, "\x00", "5\x00"]
    )
    | st.sampled_from(["new@org.example\x00", "new@org.example", "\x00@org.example"])
    | st.from_regex(r"[A-Za-z0-9+/=]{0,140}", fullmatch=True)
)
FORMS = st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=10)
CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json",
        "text/plain",
        "",
    ]
)
BODIES = st.one_of(FORMS.map(lambda f: urlencode(f).encode()), st.binary(max_size=400))

Post = Callable[[bytes, str], int]
"""Send a body with a content type; the response's status."""


def no_server_error(post: Post, *, stored: Callable[[], int] | None = None) -> None:
    """The harness: Hypothesis's bodies through ``post``; never a 5xx, and where a request
    is refused, ``stored()`` (a count of what it could have stored) is unchanged."""

    @SETTINGS
    @hypothesis.given(body=BODIES, kind=CONTENT_TYPES)
    def attempt(body: bytes, kind: str) -> None:
        before = stored() if stored else 0
        status = post(body, kind)
        assert status < 500, f"{status} for {body[:80]!r} as {kind!r}"
        if stored and status not in (200, 303):
            assert stored() == before, f"a refused request ({status}) stored something"

    attempt()


def test_the_harness_finds_a_planted_bug() -> None:
    """A handler that trusts a field to be a number: the harness must find the 500."""

    async def planted(request: Request) -> Response:
        form = await request.form()
        return PlainTextResponse(str(int(str(form.get("q.believed", "0")))))

    app = Starlette(routes=[Route("/s/x", planted, methods=["POST"])])
    loop = asyncio.new_event_loop()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://planted")
    try:

        def post(body: bytes, kind: str) -> int:
            call = client.post("/s/x", content=body, headers={"content-type": kind})
            return loop.run_until_complete(call).status_code

        with pytest.raises(AssertionError, match="500 for"):
            no_server_error(post)
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


@dataclass
class Site:
    base_url: str
    database_url: str
    single: list[str]
    poster: str
    password_link: str
    sms_code: str

    def count(self, sql: str) -> int:
        async def work(conn: Connection) -> int:
            return int(await conn.fetchval(sql))

        found: int = run_with_connection(self.database_url, work)
        return found


async def seed(conn: Connection) -> dict[str, Any]:
    keyed = await factories.keyed_tenant(conn)
    await conn.execute("UPDATE organisations SET sms_number = $1", TO)
    await conn.execute("UPDATE programs SET languages = '{en,es}'")
    program = keyed.tenant.program_id
    user = await create_user(
        conn, organisation_id=keyed.tenant.organisation_id, email="new@org.example", role="viewer"
    )
    codes = await create_batch(
        conn, program_id=program, count=1, medium="sms", sms_code_key=b"c" * 40
    )
    return {
        "single": list((await create_batch(conn, program_id=program, count=EXAMPLES)).tokens),
        "poster": await create_open_link(conn, program_id=program),
        "password_link": await make_password_link(
            conn, organisation_id=keyed.tenant.organisation_id, user_id=user
        ),
        "sms_code": codes.tokens[0],
    }


@pytest.fixture(scope="module")
def site(
    admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    env = {
        "FEEDBACK_SMS_AUTH_TOKEN": AUTH_TOKEN,
        "FEEDBACK_VONAGE_API_KEY": "key",
        "FEEDBACK_VONAGE_API_SECRET": "secret",
        "FEEDBACK_VONAGE_SIGNATURE_SECRET": VONAGE_SECRET,
        "FEEDBACK_VONAGE_API_URL": "https://127.0.0.1:9",  # refused at once: nothing leaves
    }
    with live_site(admin_url, template_database, tmp_path_factory.mktemp("fuzz"), seed, **env) as (
        server,
        url,
        seeded,
    ):
        yield Site(server.base_url, url, **seeded)


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.base_url, timeout=30) as client:
        yield client


def test_survey_posts(site: Site, client: httpx.Client) -> None:
    urls = itertools.cycle([f"/s/{token}" for token in site.single] + [f"/s/{site.poster}"])

    def post(body: bytes, kind: str) -> int:
        url = next(urls)
        return client.post(url, content=body, headers={"content-type": kind}).status_code

    no_server_error(post, stored=lambda: site.count("SELECT count(*) FROM submissions"))


def test_withdrawals(site: Site, client: httpx.Client) -> None:
    def post(body: bytes, kind: str) -> int:
        return client.post("/withdraw", content=body, headers={"content-type": kind}).status_code

    no_server_error(post, stored=lambda: site.count("SELECT count(*) FROM submissions"))


def test_logins_and_set_password(site: Site, client: httpx.Client) -> None:
    def post(body: bytes, kind: str) -> int:
        headers = {"content-type": kind, "sec-fetch-site": "same-origin"}
        login = client.post("/staff/login", content=body, headers=headers).status_code
        chosen = client.post(
            f"/staff/set-password/{site.password_link}", content=body, headers=headers
        ).status_code
        return max(login, chosen)

    no_server_error(
        post,
        stored=lambda: site.count("SELECT count(*) FROM users WHERE password_hash IS NOT NULL"),
    )


# Characters that str.isdigit() takes for digits but int() does not read (Ethiopic, Kharosthi,
# circled numbers...): where number parsers break.
DIGIT_LIKE = [
    chr(c) for c in range(sys.maxunicode + 1) if chr(c).isdigit() and not chr(c).isdecimal()
]
# What a phone sends: numbers above all (in any script), words, keywords, anything.
SMS_BODIES = (
    st.text(alphabet=st.sampled_from(DIGIT_LIKE), min_size=1, max_size=2)
    | st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=3)
    | st.sampled_from(
        ["STOP", "HELP", "RESTART", "NEWS", "Ayuda", "0", "1", "2", "99", " 1 ", "\x00", "1\x00"]
    )
    | FIELD_VALUES
)


@SETTINGS
@hypothesis.given(
    body=SMS_BODIES,
    fields=st.dictionaries(st.sampled_from(["From", "MessageSid", "To", "NumMedia"]), FIELD_VALUES),
    begin=st.booleans(),
)
def test_twilio_webhooks_signed_correctly(
    site: Site, client: httpx.Client, body: str, fields: dict[str, str], begin: bool
) -> None:
    example = next(EXAMPLE_NUMBERS)
    phone = f"+1555{example:07d}"
    params = {"MessageSid": f"SM{example:032d}", "From": phone, "To": TO, "Body": body, **fields}
    if begin:  # reach the conversation: a new one (its language menu), then the message
        start = {"MessageSid": f"SMstart{example:027d}", "From": phone, "To": TO}
        twilio(client, site, {**start, "Body": site.sms_code})
    response = twilio(client, site, params)
    assert response.status_code < 500


def twilio(client: httpx.Client, site: Site, params: dict[str, str]) -> httpx.Response:
    url = f"{site.base_url}/sms/twilio"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return client.post(url, data=params, headers={"X-Twilio-Signature": signature})


@SETTINGS
@hypothesis.given(
    fields=st.dictionaries(
        st.sampled_from(["text", "msisdn", "messageId", "to", "type", "keyword"]), FIELD_VALUES
    ),
    age=st.sampled_from([0, 30, 4000, -4000]),
)
def test_vonage_webhooks_signed_correctly(
    site: Site, client: httpx.Client, fields: dict[str, str], age: int
) -> None:
    when = int(time.time()) - age
    params = {
        "msisdn": "15550100001",
        "to": TO[1:],
        "messageId": "0A1",
        "timestamp": str(when),
        **fields,
    }
    params["sig"] = vonage_signature(VONAGE_SECRET.encode(), params)
    response = client.post("/sms/vonage", data=params)
    assert response.status_code < 500


def test_signatures_here_are_the_gateways_own() -> None:
    """(The fuzzing is signed as the gateways sign, or it would stop at the door.)"""
    params = {"a": "1"}
    expected = hmac.new(b"k", b"&a=1", hashlib.sha256).hexdigest().upper()
    assert vonage_signature(b"k", params) == expected
