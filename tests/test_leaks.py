"""The leak check: `feedback demo` driven through every flow a survivor has (the survey with
and without JavaScript, a withdrawal, an SMS conversation) and then a manager's visit, the
mixing job and a release; afterwards neither a pg_dump of the database nor any line any of
those processes logged (at DEBUG, the most they say) holds a submitted marker string, a
receipt code, the phone number in any spelling, or a client's address. The check is then
shown to find a leaking line added to those same logs."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from feedback.logs import FORMAT, SecondFormatter
from feedback.weeks import current_week, week_start
from tests.browser import chromium, run_async
from tests.collect.test_survivor_browser import answer_survey
from tests.live import PG_DUMP, Demo

pytestmark = pytest.mark.slow

PHONE = "+447700900123"  # Ofcom's range for drama: no one's number
NO_JS_ADDRESS = "203.0.113.77"  # TEST-NET-3 (RFC 5737)
JS_ADDRESS = "198.51.100.78"  # TEST-NET-2


def phone_spellings(e164: str) -> set[str]:
    """How a number might be written: E.164, without its plus, and national (a leading 0
    for the country code). Lines are compared with spaces, dashes, dots and brackets
    removed, so "+44 7700 900-123" is found too."""
    digits = e164.lstrip("+")
    national = "0" + digits[2:]
    return {e164, digits, national}


@dataclass(frozen=True, slots=True)
class Leak:
    needle: str
    source: str
    line: int
    text: str


SEPARATORS = re.compile(r"[\s\-.()]")


def find_leaks(
    texts: Mapping[str, str], needles: Iterable[str], phones: Iterable[str]
) -> list[Leak]:
    """Every line of ``texts`` (name: content) holding one of ``needles`` as written, or one
    of ``phones`` once separators are removed."""
    needles, phones = list(needles), list(phones)
    found: list[Leak] = []
    for source, text in texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            squeezed = SEPARATORS.sub("", line)
            found.extend(
                Leak(needle, source, number, line[:200])
                for needle in needles + phones
                if needle in line or (needle in phones and needle in squeezed)
            )
    return found


def pg_dump(database_url: str) -> str:
    """The whole database as a plain SQL dump, schema and data."""
    return subprocess.run(
        [str(PG_DUMP), "--no-owner", database_url],
        capture_output=True,
        check=True,
        timeout=120,
        text=True,
    ).stdout


def feedback(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feedback", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def survey_without_javascript(facts: Mapping[str, str], marker: str) -> str:
    """The single-use link, answered by a form post as a phone without JavaScript sends it;
    then the answers withdrawn with the receipt code. The code, which must not leak either."""
    headers = {"X-Forwarded-For": NO_JS_ADDRESS}
    with httpx.Client(timeout=30, headers=headers) as client:
        thanks = client.post(
            facts["survey_link"], data={"q.believed": "5", "q.safe_now": "4", "comment": marker}
        )
        assert thanks.status_code == 200, thanks.text
        receipt = re.search(r'<p class="code">([^<]+)</p>', thanks.text)
        assert receipt is not None, thanks.text
        withdrawn = client.post(f"{facts['base_url']}/withdraw", data={"code": receipt[1]})
        assert withdrawn.status_code == 200, withdrawn.text
    return receipt[1]


def survey_with_javascript(facts: Mapping[str, str], marker: str) -> None:
    """The open link in Chromium: the answers sealed in the page."""
    with chromium() as browser:
        context = browser.new_context(extra_http_headers={"X-Forwarded-For": JS_ADDRESS})
        page = context.new_page()
        page.goto(facts["open_link"])
        answer_survey(page, marker)
        context.close()


def sms_conversation(facts: Mapping[str, str], marker: str, data_dir: Path) -> None:
    """A phone through the whole survey, with a message that is no answer (the marker) on
    the way: the server asks again, and must not write down what it was sent."""
    messages = [facts["sms_start_code"], "1", marker, "5", "4", "0", "3", "2", "1"]
    played = subprocess.run(
        [sys.executable, "-m", "feedback", "sms-sim", "--from", PHONE]
        + [arg for message in messages for arg in ("-m", message)],
        env={**os.environ, "FEEDBACK_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert played.returncode == 0, played.stderr
    assert "Thank you" in played.stdout, played.stdout


def a_manager_looks(facts: Mapping[str, str]) -> None:
    with httpx.Client(base_url=facts["staff_url"], timeout=30) as staff:
        login = staff.post(
            "/login", data={"email": facts["manager_email"], "password": facts["manager_password"]}
        )
        assert login.status_code == 303
        assert staff.get("/p/shelter/").status_code == 200


def planted(log_text: str, marker: str) -> str:
    """``log_text`` with one more line, written as the service's own logging writes it, by a
    careless handler that logs the form it was sent."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SecondFormatter(FORMAT))
    careless = logging.getLogger("feedback.collect.views")
    careless.addHandler(handler)
    try:
        careless.warning("could not store %s", {"comment": marker, "from": "+44 7700 900123"})
    finally:
        careless.removeHandler(handler)
    return log_text + stream.getvalue()


def count_submissions(database_url: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM submissions"))
        finally:
            await conn.close()

    return int(run_async(count()))


async def move_to(database_url: str, day: dt.date) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE submissions SET received_week = $1 WHERE received_week = $2",
            week_start(day),
            current_week(),
        )
    finally:
        await conn.close()


def test_no_marker_phone_number_or_address_in_the_database_or_any_log(
    database_url: str, tmp_path: Path
) -> None:
    markers = {kind: f"LEAKCHECK-{kind}-{os.urandom(6).hex()}" for kind in ("nojs", "js", "sms")}
    data_dir = tmp_path / "data"
    env = {
        "FEEDBACK_DATABASE_URL": database_url,
        "FEEDBACK_DATA_DIR": str(data_dir),
        "FEEDBACK_LOG_LEVEL": "DEBUG",
        "FEEDBACK_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    demo = Demo(data_dir, env)
    outputs: dict[str, str] = {}
    try:
        facts = demo.wait_until_serving()
        before = count_submissions(database_url)
        receipt = survey_without_javascript(facts, markers["nojs"])
        survey_with_javascript(facts, markers["js"])
        sms_conversation(facts, markers["sms"], data_dir)
        a_manager_looks(facts)
    finally:
        outputs["demo stdout"] = demo.stop(signal.SIGINT)
    outputs["demo log"] = demo.log.read_text()
    assert demo.process.returncode == 0, outputs["demo log"]

    # Two stored (the JavaScript survey and the SMS); the form post was withdrawn.
    assert count_submissions(database_url) == before + 2
    mixed = feedback("jobs", "run", "mix-submissions", env=env)
    assert mixed.returncode == 0, mixed.stderr
    # A period is released once it has ended: move this week's rows back to a quarter of a
    # year the demo did not plan (it plans and releases the last two), as if time had passed,
    # and release that.
    old_year = current_week().year - 3
    run_async(move_to(database_url, dt.date(old_year, 12, 1)))
    planned = feedback(
        "plan",
        "add",
        "-o",
        "demo",
        "--year",
        str(old_year),
        "-q",
        "believed",
        "--accept-wide",
        env=env,
    )
    assert planned.returncode == 0, planned.stderr
    released = feedback(
        "aggregate",
        "-o",
        "demo",
        "--period",
        f"{old_year}-Q4",
        "--passphrase-file",
        facts["key_passphrase_file"],
        env=env,
    )
    assert released.returncode == 0, released.stdout + released.stderr
    assert "(made)" in released.stdout, released.stdout
    for name, done in (("mix", mixed), ("plan", planned), ("aggregate", released)):
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = done.stdout, done.stderr

    texts = {"pg_dump": pg_dump(database_url), **outputs}
    assert "COPY public.submissions" in texts["pg_dump"]  # the dump has the answers' table
    assert "feedback.access POST /staff/login 303" in outputs["demo log"]  # the log is on
    needles = [*markers.values(), receipt, NO_JS_ADDRESS, JS_ADDRESS]
    assert find_leaks(texts, needles, phone_spellings(PHONE)) == []

    # The check itself: one careless line added to the real log is found, twice over.
    texts["demo log"] = planted(texts["demo log"], markers["sms"])
    leaks = find_leaks(texts, needles, phone_spellings(PHONE))
    assert {leak.needle for leak in leaks} >= {markers["sms"], "447700900123"}
    assert {leak.source for leak in leaks} == {"demo log"}
