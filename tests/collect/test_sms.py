"""The SMS channel through Twilio's webhook: signatures as the official twilio package makes
them, whole conversations in English and Spanish read back by the aggregator's opening code,
keywords, retries, idle sessions, bad input, and no trace of the number or a marker."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from feedback.aggregate.keys import UnlockedKey
from feedback.collect.jobs import _purge, idle_sms_sessions
from feedback.collect.jobs import jobs as collect_jobs
from feedback.collect.sms.gsm import segments
from feedback.db import Connection, Pool
from feedback.envelope import from_plaintext
from feedback.jobs import run_once
from feedback.phones import idle_seal
from feedback.publish.invitations import create_batch, create_open_link
from tests import factories
from tests.collect.conftest import SECRETS
from tests.live import PG_DUMP

URL = "http://127.0.0.1:8000/sms/twilio"
PHONE = "+15550104477"
TO = "+15550009999"
VALIDATOR = RequestValidator(SECRETS.sms_auth_token.decode())
IDLE = idle_seal(SECRETS.phone_hmac)


async def go_idle(conn: Connection) -> None:
    """Every conversation's idle moment, a minute ago."""
    await conn.execute(
        "UPDATE sms_sessions SET idle_after = $1",
        IDLE.seal(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)),
    )


_sids = itertools.count()


def params(body: str, *, sender: str = PHONE, sid: str | None = None) -> dict[str, str]:
    """What Twilio posts, location fields included."""
    return {
        "MessageSid": sid or f"SM{next(_sids):032d}",
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": TO,
        "Body": body,
        "NumMedia": "0",
        "FromCity": "SPRINGFIELD",
        "FromState": "IL",
        "FromZip": "62701",
        "FromCountry": "US",
        "ToCountry": "US",
        "ApiVersion": "2010-04-01",
    }


async def text(client: httpx.AsyncClient, body: str, **options: Any) -> tuple[int, str | None]:
    """Post one message signed as Twilio signs it; (status, the reply or None)."""
    data = params(body, **{k: v for k, v in options.items() if k in ("sender", "sid")})
    url = options.get("url", URL)
    signature = options.get("signature") or VALIDATOR.compute_signature(url, data)
    response = await client.post(URL, data=data, headers={"X-Twilio-Signature": signature})
    if response.status_code != 200:
        return response.status_code, None
    assert response.headers["content-type"].startswith("text/xml")
    found = re.search(r"<Message>(.*)</Message>", response.text, flags=re.S)
    return 200, None if found is None else found[1]


async def sms_tenant(conn: Connection, languages: list[str]) -> factories.KeyedTenant:
    keyed = await factories.keyed_tenant(conn)
    await conn.execute(
        "UPDATE programs SET languages = $2 WHERE id = $1", keyed.tenant.program_id, languages
    )
    await conn.execute("UPDATE organisations SET sms_number = $1", TO)
    return keyed


async def sms_code(conn: Connection, keyed: factories.KeyedTenant) -> str:
    batch = await create_batch(
        conn,
        program_id=keyed.tenant.program_id,
        count=1,
        medium="sms",
        sms_code_key=SECRETS.sms_code_key,
    )
    return batch.tokens[0]


def opened(keyed: factories.KeyedTenant, ciphertext: bytes) -> Any:
    """The aggregator's own opening code."""
    key = UnlockedKey(keyed.tenant.key_id, keyed.private_key)
    return from_plaintext(key.open(ciphertext))


async def test_signatures_from_the_twilio_package_are_accepted_and_others_refused(
    conn: Connection, survivor: httpx.AsyncClient
) -> None:
    await sms_tenant(conn, ["en"])
    assert (await text(survivor, "HELP"))[0] == 200
    data = params("HELP")
    good = VALIDATOR.compute_signature(URL, data)
    one_byte = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    for signature in (
        one_byte,
        VALIDATOR.compute_signature("http://127.0.0.1:8000/sms/other", data),  # wrong URL
        VALIDATOR.compute_signature(URL, {**data, "Body": "HELLO"}),  # another body
        "",
    ):
        response = await survivor.post(URL, data=data, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 403
    tampered = await survivor.post(
        URL, data={**data, "Body": "1234567890"}, headers={"X-Twilio-Signature": good}
    )
    assert tampered.status_code == 403
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0


async def test_a_whole_conversation_in_english(
    conn: Connection, survivor: httpx.AsyncClient
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    code = await sms_code(conn, keyed)
    status, first = await text(survivor, f" {code[:5]} {code[5:]} ")
    assert status == 200
    assert first is not None
    assert first.startswith("1/6 Staff believed me.")
    given = ["5", "4", "0", "2", "3", "1"]  # 0 skips the third question
    replies = []
    for answer in given:
        replies.append((await text(survivor, answer))[1])
        if answer == "5":
            # a sealed fragment is kept between messages, never the answer
            fragments = await conn.fetchval("SELECT fragments FROM sms_sessions")
            assert len(fragments) == 1
            assert b"believed" not in fragments[0]
    assert replies[-1] is not None
    assert replies[-1].startswith("Thank you")
    for reply in [first, *replies]:
        assert reply is not None
        assert segments(reply) == 1
        assert "traffick" not in reply.lower()
    [row] = await conn.fetch("SELECT channel, ciphertext FROM submissions")
    assert row["channel"] == "sms"
    envelope = opened(keyed, row["ciphertext"])
    assert (envelope.survey, envelope.language) == ("rights-based", "en")
    assert dict(envelope.answers) == {
        "believed": 5,
        "respected": 4,
        "safe_now": 2,
        "trust_help": 3,
        "recommend": 1,
    }
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0
    assert await conn.fetchval("SELECT count(*) FROM invitations") == 0  # spent: gone
    # Texting it again starts nothing, and says no more than for a code that never existed:
    # whoever holds the phone later learns nothing.
    status, again = await text(survivor, code)
    assert again == "Sorry, that code does not work. Please check it and send it again."
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0


async def test_a_whole_conversation_in_spanish(
    conn: Connection, survivor: httpx.AsyncClient
) -> None:
    keyed = await sms_tenant(conn, ["en", "es"])
    code = await sms_code(conn, keyed)
    menu = (await text(survivor, code))[1]
    assert menu == "Reply with a number: 1 English 2 Español"
    assert (await text(survivor, "3"))[1] is not None  # not a language: asked again
    first = (await text(survivor, "2"))[1]
    assert first is not None
    assert first.startswith("1/6 El personal me creyo.")  # one GSM-7 segment, accent dropped
    assert segments(first) == 1
    unreadable = (await text(survivor, "mucho 😀"))[1]  # not a number: asked once more
    assert unreadable is not None
    assert unreadable.startswith("Perdone, no pude leer eso. 1/6")
    assert (await text(survivor, "AYUDA"))[1] is not None  # help in between changes nothing
    for answer in ("4", "9", "9", "5", "5", "5", "3"):  # 9 twice: asked once, then skipped
        last = (await text(survivor, answer))[1]
    assert last is not None
    assert last.startswith("Gracias")
    envelope = opened(keyed, await conn.fetchval("SELECT ciphertext FROM submissions"))
    assert envelope.language == "es"
    assert dict(envelope.answers) == {
        "believed": 4,
        "safe_services": 5,
        "safe_now": 5,
        "trust_help": 5,
        "recommend": 3,
    }
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0


@pytest.mark.parametrize("word", ["STOP", "stop", "Cancelar", " END ", "parar"])
async def test_stop_mid_survey_forgets_everything(
    conn: Connection, survivor: httpx.AsyncClient, word: str
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    await text(survivor, await sms_code(conn, keyed))
    await text(survivor, "5")
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 1
    status, reply = await text(survivor, word)
    assert (status, reply) == (200, None)  # nothing is sent back
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0


async def test_a_retried_message_changes_nothing_and_gets_the_same_reply(
    conn: Connection, survivor: httpx.AsyncClient
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    await text(survivor, await sms_code(conn, keyed))
    first = await text(survivor, "5", sid="SM-retried")
    step = await conn.fetchval("SELECT step FROM sms_sessions")
    again = await text(survivor, "5", sid="SM-retried")
    assert again == first
    assert await conn.fetchval("SELECT step FROM sms_sessions") == step == 1
    for answer in ("4", "4", "4", "4", "4"):
        await text(survivor, answer, sid=f"SM-last-{answer}-{uuid.uuid4()}")
    last = await text(survivor, "4", sid="SM-final")  # (the session has ended already)
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
    assert last == await text(survivor, "4", sid="SM-final")
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_a_replayed_earlier_message_changes_nothing_and_sends_nothing(
    conn: Connection, survivor: httpx.AsyncClient
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    code = await sms_code(conn, keyed)
    await text(survivor, code, sid="SM-code")
    await text(survivor, "5", sid="SM-first")
    second = await text(survivor, "4", sid="SM-second")
    # The first answer again, mid-conversation: no step taken, no reply to send.
    assert await text(survivor, "5", sid="SM-first") == (200, None)
    assert await conn.fetchval("SELECT step FROM sms_sessions") == 2
    assert await text(survivor, "4", sid="SM-second") == second  # the last: a retry
    for n in range(4):
        await text(survivor, "3", sid=f"SM-more-{n}")
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
    # Ended: its code replayed starts nothing (an open code would begin again and text the
    # phone), nor does any earlier message.
    for sid, body in (("SM-code", code), ("SM-first", "5"), ("SM-more-1", "3")):
        assert await text(survivor, body, sid=sid) == (200, None)
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0
    # STOP ends a conversation too; its unspent code, replayed, begins nothing.
    other = {"sender": "+15550104478"}
    unspent = await sms_code(conn, keyed)
    assert (await text(survivor, unspent, sid="SM-code-2", **other))[1]
    await text(survivor, "STOP", sid="SM-stop", **other)
    assert await text(survivor, unspent, sid="SM-code-2", **other) == (200, None)
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0


async def test_an_idle_session_is_purged_and_its_answers_discarded(
    conn: Connection, worker_conn: Connection, survivor: httpx.AsyncClient
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    await text(survivor, await sms_code(conn, keyed))
    await text(survivor, "5")
    await go_idle(conn)
    await idle_sms_sessions(SECRETS.phone_hmac)(worker_conn)
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0


async def test_a_program_that_keeps_partial_answers_gets_them_when_idle(
    conn: Connection, worker_pool: Pool, survivor: httpx.AsyncClient
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    await conn.execute("UPDATE programs SET keep_partial_sms = true")
    await text(survivor, await sms_code(conn, keyed))
    await text(survivor, "5")
    await text(survivor, "2")
    await go_idle(conn)
    purge = next(
        job for job in collect_jobs(SECRETS.phone_hmac) if job.name == "purge-idle-sms-sessions"
    )
    assert await run_once(worker_pool, purge)  # as the worker runs it, with its job_runs row
    envelope = opened(keyed, await conn.fetchval("SELECT ciphertext FROM submissions"))
    assert dict(envelope.answers) == {"believed": 5, "respected": 2}
    assert await conn.fetchval("SELECT count(*) FROM invitations") == 0  # the code is spent
    # The kept answers share no transaction with the run's row.
    assert not await conn.fetchval(
        "SELECT count(*) FROM submissions s JOIN job_runs j ON j.xmin::text = s.xmin::text"
    )


async def test_a_text_that_comes_while_the_purge_reads_keeps_the_conversation(
    conn: Connection, worker_conn: Connection, survivor: httpx.AsyncClient
) -> None:
    """The purge deletes a conversation only if its idle moment is still the one it read (a
    worker whose clock runs ahead may find idle what the survivor app does not)."""
    keyed = await sms_tenant(conn, ["en"])
    await text(survivor, await sms_code(conn, keyed))
    read = await conn.fetch("SELECT id, idle_after FROM sms_sessions")
    await text(survivor, "5")  # the conversation goes on: a new idle moment
    await _purge(worker_conn, [(r["id"], r["idle_after"]) for r in read])
    assert await conn.fetchval("SELECT step FROM sms_sessions") == 1


@pytest.mark.parametrize(
    "body",
    ["", "hello", "😀😀😀", "x" * 5000, "0000000000", "12345678901234567890", "1234"],
)
async def test_unknown_codes_and_garbage_get_a_neutral_reply_and_no_session(
    conn: Connection, survivor: httpx.AsyncClient, body: str
) -> None:
    keyed = await sms_tenant(conn, ["en"])
    await sms_code(conn, keyed)
    status, reply = await text(survivor, body)
    assert status == 200
    assert reply == "Sorry, that code does not work. Please check it and send it again."
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0


async def test_keywords_work_at_any_point(conn: Connection, survivor: httpx.AsyncClient) -> None:
    keyed = await sms_tenant(conn, ["en"])
    await conn.execute("UPDATE organisations SET sms_help_text = 'Call 555-0100, 9 to 5.'")
    assert (await text(survivor, "NEWS"))[1] == "There is no news yet."
    await conn.execute(
        "INSERT INTO notes (organisation_id, program_id) VALUES ($1, $2)",
        keyed.tenant.organisation_id,
        keyed.tenant.program_id,
    )
    await conn.execute(
        "INSERT INTO note_texts (note_id, language, body) "
        "SELECT id, 'en', 'You asked for evening hours: we are open until 8 now.' FROM notes"
    )
    assert (await text(survivor, "news"))[1] == (
        "You asked for evening hours: we are open until 8 now."
    )
    assert await conn.fetchval("SELECT count(*) FROM sms_sessions") == 0  # NEWS starts nothing
    code = await create_open_link(
        conn, program_id=keyed.tenant.program_id, medium="sms", sms_code_key=SECRETS.sms_code_key
    )
    await text(survivor, code)
    await text(survivor, "5")
    assert (await text(survivor, "HELP"))[1] == "Call 555-0100, 9 to 5."
    restarted = (await text(survivor, "RESTART"))[1]
    assert restarted is not None
    assert restarted.startswith("1/6 ")
    assert await conn.fetchval("SELECT (step, cardinality(fragments)) FROM sms_sessions") == (0, 0)


async def test_a_flood_from_one_number_is_cut_off(
    conn: Connection, survivor: httpx.AsyncClient
) -> None:
    await sms_tenant(conn, ["en"])
    replies = [(await text(survivor, "hello"))[1] for _ in range(35)]
    assert replies[0] is not None
    assert replies[29] is not None
    assert replies[30:] == [None] * 5  # past the limit: read nothing, say nothing
    other = await text(survivor, "hello", sender="+15550100001")
    assert other[1] is not None  # other numbers are not affected


async def test_no_dump_or_log_holds_the_number_or_a_marker(
    conn: Connection,
    survivor: httpx.AsyncClient,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    keyed = await sms_tenant(conn, ["en"])
    marker = "MARKER-7c1e-SPRINGFIELD"
    await text(survivor, await sms_code(conn, keyed))
    await text(survivor, "5")
    await text(survivor, f"4 {marker}")  # unreadable: asked again, never stored

    def dump() -> str:
        return subprocess.run(
            [str(PG_DUMP), "--data-only", database_url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    during = dump()
    for answer in ("4", "4", "4", "4", "4"):
        await text(survivor, answer)
    after = dump()
    for snapshot in (during, after):
        assert "5550104477" not in snapshot
        assert marker not in snapshot
        assert "SPRINGFIELD" not in snapshot
        assert "62701" not in snapshot
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
    ours = [r for r in caplog.records if r.name.startswith("feedback")]
    logged = "\n".join(r.getMessage() + repr(r.args) for r in ours)
    # No line per message at all: its time would date a survivor's answer.
    for secret in ("/sms/", "5550104477", marker, "SPRINGFIELD", "62701"):
        assert secret not in logged


async def test_a_conversation_row_holds_no_readable_time(
    conn: Connection, survivor: httpx.AsyncClient
) -> None:
    """Its idle moment is sealed under the phone key: only the apps that hold it read it."""
    keyed = await sms_tenant(conn, ["en"])
    await text(survivor, await sms_code(conn, keyed))
    await text(survivor, "5")
    sealed = await conn.fetchval("SELECT idle_after FROM sms_sessions")
    left = IDLE.open(sealed) - dt.datetime.now(dt.UTC)  # type: ignore[operator]
    assert dt.timedelta(minutes=29) <= left <= dt.timedelta(minutes=30)
    columns = await conn.fetch(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'sms_sessions'"
    )
    assert not [c for c in columns if "time" in c["data_type"] or c["data_type"] == "date"]


# (Fullwidth and superscript digits fold to ASCII ones, NFKD, and are read as numbers.)
@pytest.mark.parametrize("digit", ["\u1369", "\u0662", "\u09e8"])  # Ethiopic, Arabic, Bengali
async def test_digits_of_other_scripts_are_text_not_numbers(
    conn: Connection, survivor: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, digit: str
) -> None:
    keyed = await sms_tenant(conn, ["en", "es"])
    await text(survivor, await sms_code(conn, keyed))
    for _ in range(2):  # at the language menu, then at a question
        status, reply = await text(survivor, digit)
        assert status == 200
        assert reply is not None
        assert reply.startswith(("Sorry, I could not read that.", "1/6 "))
        await text(survivor, "1")
    assert digit not in "\\n".join(r.getMessage() for r in caplog.records)
