"""The survey page and its form post, in-process: what is stored, and what bad input gets."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from nacl.public import SealedBox

from feedback.collect.app import create_app
from feedback.config import Settings
from feedback.db import SURVIVOR, Connection, create_pool
from feedback.envelope import Envelope, from_plaintext
from feedback.publish.invitations import create_batch, create_open_link
from feedback.sealing import seal
from feedback.surveys import FIRST_VERSION, load_survey
from feedback.weeks import current_week
from tests import factories
from tests.asgi import client_for
from tests.collect.conftest import SECRETS

ANSWERS = {"q.believed": "5", "q.pressured": "prefer_not", "q.gender": "woman", "q.housing": ""}


async def link(conn: Connection, t: factories.Tenant) -> str:
    batch = await create_batch(conn, program_id=t.program_id, count=1)
    return f"/s/{batch.tokens[0]}"


async def stored(conn: Connection) -> list[dict[str, object]]:
    return [dict(r) for r in await conn.fetch("SELECT * FROM submissions")]


async def test_page_offers_every_question_with_nothing_chosen(
    conn, survivor: httpx.AsyncClient
) -> None:
    keyed = await factories.keyed_tenant(conn)
    page = await survivor.get(await link(conn, keyed.tenant), headers={"accept-language": "es"})
    assert page.status_code == 200
    assert '<html lang="es">' in page.text
    assert "<title>Su experiencia</title>" in page.text
    assert "data-quick-exit" in page.text
    assert page.text.count("<fieldset") == 18  # every question but the comment
    # Nothing is chosen until the survivor chooses (an unanswered question is skipped), and a
    # scale has one way out, "prefer not to say", not two.
    assert " checked" not in page.text
    assert "Saltar esta pregunta" not in page.text
    likert = sum(q.type == "likert5" for q in load_survey(FIRST_VERSION).questions)
    assert page.text.count('value="prefer_not"') == likert
    assert 'name="comment"' in page.text
    assert base64.b64encode(bytes(keyed.private_key.public_key)).decode() in page.text
    assert "set-cookie" not in page.headers


async def test_comment_is_offered_only_where_the_organisation_allows(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn, comments=False)
    page = await survivor.get(await link(conn, keyed.tenant))
    assert 'name="comment"' not in page.text
    post = await survivor.post(await link(conn, keyed.tenant), data={"comment": "hello"})
    assert post.status_code == 400
    assert await stored(conn) == []


async def test_no_javascript_post_is_sealed_on_arrival(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = await link(conn, keyed.tenant)
    response = await survivor.post(url + "?lang=es", data={**ANSWERS, "comment": "¡Gracias! ✓"})
    assert response.status_code == 200
    assert "Gracias" in response.text
    receipt = re.search(r'<p class="code">([0-9A-Z-]+)</p>', response.text)
    assert receipt is not None
    [row] = await stored(conn)
    assert row["channel"] == "web_nojs"
    assert row["open_link"] is False
    assert "key_id" not in row  # which key sealed it would split a rotation's week
    assert row["received_week"] == current_week()
    assert row["receipt_hash"] is not None
    ciphertext = row["ciphertext"]
    assert isinstance(ciphertext, bytes)
    assert len(ciphertext) == 1024 + 48
    envelope = from_plaintext(SealedBox(keyed.private_key).decrypt(ciphertext))
    assert envelope == Envelope(
        "rights-based",
        1,
        "es",
        {"believed": 5, "pressured": "prefer_not", "gender": "woman"},
        "¡Gracias! ✓",
    )


async def test_browser_sealed_post_is_stored_as_sent(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    sealed = seal(
        keyed.private_key.public_key,
        Envelope("rights-based", 1, "en", {"believed": 4}).to_plaintext(),
    )
    response = await survivor.post(
        await link(conn, keyed.tenant),
        data={"sealed": base64.b64encode(sealed).decode(), "key_id": str(keyed.tenant.key_id)},
    )
    assert response.status_code == 200
    [row] = await stored(conn)
    assert row["channel"] == "web"
    assert row["ciphertext"] == sealed


async def test_a_box_sealed_to_a_retired_key_is_refused_and_the_link_still_works(
    conn, survivor
) -> None:
    """After a rotation, a page loaded before it is refused and loads again with the new key
    (nothing is stored to the old one, which the organisation may have retired for cause)."""
    keyed = await factories.keyed_tenant(conn)
    old_key = await conn.fetchval(
        "SELECT id FROM collection_keys WHERE retired_week IS NOT NULL AND organisation_id = $1",
        keyed.tenant.organisation_id,
    )
    url = await link(conn, keyed.tenant)
    response = await survivor.post(url, data=sealed_post(keyed, key_id=str(old_key)))
    assert response.status_code == 400
    assert "Nothing was saved" in response.text
    assert await stored(conn) == []
    assert (await survivor.post(url, data=sealed_post(keyed))).status_code == 200


async def test_used_expired_revoked_and_unknown_links_get_the_same_page(conn, survivor) -> None:
    """Whoever holds a survivor's phone later learns nothing from opening the link again."""
    keyed = await factories.keyed_tenant(conn)
    used = await link(conn, keyed.tenant)
    assert (await survivor.post(used, data=ANSWERS)).status_code == 200
    expired = await create_batch(
        conn, program_id=keyed.tenant.program_id, count=1, lifetime=dt.timedelta(seconds=-1)
    )
    revoked = await create_batch(conn, program_id=keyed.tenant.program_id, count=1)
    await conn.execute(
        "UPDATE invitation_batches SET revoked_on = utc_today() WHERE id = $1", revoked.id
    )
    urls = [
        used,
        f"/s/{expired.tokens[0]}",
        f"/s/{revoked.tokens[0]}",
        "/s/AAAAAAAAAAAAAAAAAAAAAA",
        "/s/not-a-token",
    ]
    for method in ("GET", "POST"):
        pages = set()
        for url in urls:
            for data in (ANSWERS, sealed_post(keyed)):
                response = await survivor.request(
                    method, url, data=data if method == "POST" else None
                )
                assert response.status_code == 404, url
                assert "data-quick-exit" in response.text
                pages.add(response.text)
        assert len(pages) == 1, "a used, expired or revoked link must look like an unknown one"
        assert "does not work" in pages.pop()
    assert len(await stored(conn)) == 1


async def test_two_concurrent_submits_of_one_token_store_one_row(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = await link(conn, keyed.tenant)
    first, second = await asyncio.gather(
        survivor.post(url, data=ANSWERS), survivor.post(url, data=ANSWERS)
    )
    assert sorted([first.status_code, second.status_code]) == [200, 404]
    assert len(await stored(conn)) == 1


async def test_concurrent_sealed_posts_of_one_token_store_one_row(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = await link(conn, keyed.tenant)
    other = await link(conn, keyed.tenant)
    third = await link(conn, keyed.tenant)
    responses = await asyncio.gather(
        survivor.post(url, data=sealed_post(keyed)),
        survivor.post(url, data=sealed_post(keyed)),
        survivor.post(other, data=sealed_post(keyed)),
        survivor.post(third, data=sealed_post(keyed, key_id=str(uuid.uuid4()))),
    )
    statuses = [r.status_code for r in responses]
    assert sorted(statuses[:2]) == [200, 404]  # one of two posts of the same token
    assert statuses[2:] == [200, 400]  # another token; an unknown key, in the same batch
    assert len(await stored(conn)) == 2


# The functions that store a post (migrations/0028), with and without JavaScript.
STORING = (
    "store_sealed_batch(bytea[], uuid[], bytea[], bytea[]), "
    "store_submission(bytea, text, bytea, bytea)"
)


@pytest.mark.parametrize("javascript", [True, False])
async def test_a_failure_says_nothing_was_saved_on_a_neutral_page(
    conn, database_url, javascript: bool
) -> None:
    """A real refusal from the database (the survivor role may not store), not a stand-in."""
    keyed = await factories.keyed_tenant(conn)
    url = await link(conn, keyed.tenant)
    await conn.execute(f"REVOKE EXECUTE ON FUNCTION {STORING} FROM feedback_survivor")
    settings = replace(Settings.from_env({}), database_url=database_url)
    try:
        async with create_pool(database_url, role=SURVIVOR, max_size=2) as survivor_pool:
            app = create_app(settings, SECRETS, pool=survivor_pool)
            async with client_for(app, raise_app_exceptions=False) as client:  # as a server
                data = sealed_post(keyed) if javascript else ANSWERS
                response = await client.post(url + "?lang=es", data=data)
    finally:
        await conn.execute(f"GRANT EXECUTE ON FUNCTION {STORING} TO feedback_survivor")
    assert response.status_code == 500
    assert "data-quick-exit" in response.text
    assert "<title>Su experiencia</title>" in response.text
    assert "No se guardó nada" in response.text
    assert await stored(conn) == []


async def test_open_links_take_many_answers_flagged_and_rate_limited(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = f"/s/{await create_open_link(conn, program_id=keyed.tenant.program_id)}"
    statuses = [(await survivor.post(url, data=ANSWERS)).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    rows = await stored(conn)
    assert len(rows) == 5
    assert all(row["open_link"] for row in rows)


def sealed_post(keyed: factories.KeyedTenant, **overrides: str) -> dict[str, str]:
    sealed = seal(keyed.private_key.public_key, Envelope("rights-based", 1, "en").to_plaintext())
    return {
        "sealed": base64.b64encode(sealed).decode(),
        "key_id": str(keyed.tenant.key_id),
    } | overrides


@pytest.mark.parametrize(
    ("name", "status", "make_data"),
    [
        ("not base64", 400, lambda k: sealed_post(k, sealed="***")),
        (
            "wrong length",
            400,
            lambda k: sealed_post(k, sealed=base64.b64encode(b"x" * 100).decode()),
        ),
        ("unknown key id", 400, lambda k: sealed_post(k, key_id=str(uuid.uuid4()))),
        ("malformed key id", 400, lambda k: sealed_post(k, key_id="key")),
        ("sealed plus plain fields", 400, lambda k: sealed_post(k, **{"q.believed": "5"})),
        ("field not in the survey", 400, lambda k: {"q.favourite_colour": "blue"}),
        ("unexpected field", 400, lambda k: {"name": "Maria"}),
        ("answer out of range", 400, lambda k: {"q.believed": "7"}),
        ("digit-like but not a digit", 400, lambda k: {"q.believed": "²"}),
        ("option not offered", 400, lambda k: {"q.gender": "robot"}),
        ("comment too long", 400, lambda k: {"comment": "x" * 1001}),
    ],
)
async def test_bad_posts_are_refused_and_store_nothing(
    conn, survivor, name: str, status: int, make_data: object
) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = await link(conn, keyed.tenant)
    response = await survivor.post(url, data=make_data(keyed))  # type: ignore[operator]
    assert response.status_code == status, name
    assert "Nothing was saved" in response.text
    assert await stored(conn) == []
    # The link still works afterwards: bad input consumed nothing.
    assert (await survivor.post(url, data=ANSWERS)).status_code == 200


@pytest.mark.parametrize(
    ("name", "body", "content_type"),
    [
        ("not UTF-8 once decoded", b"q.believed=%FF%FE", "application/x-www-form-urlencoded"),
        (
            "too many fields",
            b"&".join(b"f%d=1" % i for i in range(65)),
            "application/x-www-form-urlencoded",
        ),
        ("raw bytes", b"\xff\x00\x01", "application/x-www-form-urlencoded"),
        (
            "multipart with a file",
            b'--b\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ],
)
async def test_unreadable_bodies_are_refused_and_store_nothing(
    conn, survivor, name: str, body: bytes, content_type: str
) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = await link(conn, keyed.tenant)
    response = await survivor.post(url, content=body, headers={"content-type": content_type})
    assert response.status_code == 400, name
    assert "Nothing was saved" in response.text
    assert "data-quick-exit" in response.text
    assert await stored(conn) == []
    assert (await survivor.post(url, data=ANSWERS)).status_code == 200


async def test_key_of_another_organisation_is_refused(conn, survivor) -> None:
    mine = await factories.keyed_tenant(conn, "mine")
    theirs = await factories.keyed_tenant(conn, "theirs")
    data = sealed_post(mine, key_id=str(theirs.tenant.key_id))
    response = await survivor.post(await link(conn, mine.tenant), data=data)
    assert response.status_code == 400
    assert await stored(conn) == []


async def test_oversized_body_is_413_and_stores_nothing(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = await link(conn, keyed.tenant)
    declared = await survivor.post(url, data={"comment": "x" * (40 * 1024)})

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"comment=" + b"x" * 1024 + b"&"

    streamed = await survivor.post(
        url, content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "data-quick-exit" in response.text  # a neutral page, not a bare error
        assert "too long to send" in response.text
    assert await stored(conn) == []


async def test_language_from_link_then_header_and_unknown_language(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    url = await link(conn, keyed.tenant)
    assert '<html lang="es">' in (await survivor.get(url + "?lang=es")).text
    assert (
        '<html lang="es">'
        in (
            await survivor.get(url, headers={"accept-language": "fr;q=1, es-MX;q=0.8, en;q=0.5"})
        ).text
    )
    assert '<html lang="en">' in (await survivor.get(url, headers={"accept-language": "de"})).text
    unknown = await survivor.get(url + "?lang=xx")
    assert unknown.status_code == 400
    assert "?lang=es" in unknown.text
    post = await survivor.post(url + "?lang=xx", data=ANSWERS)
    assert post.status_code == 400
    assert await stored(conn) == []


async def test_withdraw_with_the_receipt(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    response = await survivor.post(await link(conn, keyed.tenant), data=ANSWERS)
    match = re.search(r'<p class="code">([0-9A-Z-]+)</p>', response.text)
    assert match is not None
    code = match.group(1)
    wrong = await survivor.post("/withdraw", data={"code": "0000-0000-0000"})
    assert wrong.status_code == 404
    assert len(await stored(conn)) == 1
    typed = code.lower().replace("-", " ")  # as someone might type it
    deleted = await survivor.post("/withdraw", data={"code": typed})
    assert deleted.status_code == 200
    assert "have been deleted" in deleted.text
    assert await stored(conn) == []


async def test_withdraw_after_release_says_so(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    response = await survivor.post(await link(conn, keyed.tenant), data=ANSWERS)
    match = re.search(r'<p class="code">([0-9A-Z-]+)</p>', response.text)
    assert match is not None
    await conn.execute("UPDATE submissions SET included_in_release = true")
    counted = await survivor.post("/withdraw?lang=es", data={"code": match.group(1)})
    assert "ya se contaron" in counted.text
    assert len(await stored(conn)) == 1


async def test_notes_from_managers_appear_on_start_and_thanks_pages(conn, survivor) -> None:
    keyed = await factories.keyed_tenant(conn)
    note_id = await conn.fetchval(
        "INSERT INTO notes (organisation_id, program_id) VALUES ($1, $2) RETURNING id",
        keyed.tenant.organisation_id,
        keyed.tenant.program_id,
    )
    await conn.execute(
        "INSERT INTO note_texts (note_id, language, body) VALUES "
        "($1, 'en', 'We now open on Saturdays.'), ($1, 'es', 'Ahora abrimos los sábados.')",
        note_id,
    )
    url = await link(conn, keyed.tenant)
    assert "We now open on Saturdays." in (await survivor.get(url)).text
    assert (
        "Ahora abrimos los sábados." in (await survivor.post(url + "?lang=es", data=ANSWERS)).text
    )


async def test_static_files_are_cacheable_and_match_their_integrity(survivor) -> None:
    page_assets = ("survey.js", "exit.js", "survivor.css")
    for name in page_assets:
        response = await survivor.get(f"/static/{name}")
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
