"""Each finding of the security review, tried against a real `feedback serve` on loopback (the
attacks in tests/attackers.py): survivor pages keep answering, and quickly, through a login
flood, slow-body clients and worst-case passphrase posts; eight guessers in parallel get a
handful of guesses. Each test prints the figures it measured (`pytest -s` shows them); the
speed targets themselves are `make bench`'s (benchmarks/attack.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from feedback.db import Connection
from feedback.publish.accounts import FREE_FAILURES, wait_after
from feedback.web import ACQUIRE_TIMEOUT_S, BODY_DEADLINE_S
from tests.attackers import (
    GUESSERS,
    TARGET_EMAIL,
    Latencies,
    checked_guesses,
    guessers,
    hostile_passphrases,
    login_flood,
    paced_latencies,
    seed_targets,
    slow_bodies,
)
from tests.live import LiveServer

pytestmark = pytest.mark.slow

MEASURE_S = 5


@dataclass(frozen=True, slots=True)
class Site:
    server: LiveServer
    page: str  # a survivor's survey page
    links: list[str]  # valid set-password links


@pytest.fixture
async def site(conn: Connection, database_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    targets = await seed_targets(conn, links=20)
    server = LiveServer(
        database_url,
        tmp_path / "server.log",
        FEEDBACK_TRUSTED_PROXIES="127.0.0.1/32",
        FEEDBACK_LOG_LEVEL="WARNING",
    )
    try:
        page = f"{server.base_url}/s/{targets.survey_token}"
        await paced_latencies(page, 1)  # warm up
        yield Site(server, page, targets.password_links)
    finally:
        log = server.stop()
    assert "Traceback" not in log, log


async def during(
    site: Site, attack: Callable[[float], Awaitable[Counter[str]]], seconds: float
) -> tuple[Latencies, Counter[str]]:
    """Survivor page latencies measured for MEASURE_S while ``attack`` runs for ``seconds``
    (the measuring starts once the attack has had a second to build up)."""

    async def measure() -> Latencies:
        await asyncio.sleep(1)
        return await paced_latencies(site.page, MEASURE_S)

    return await asyncio.gather(measure(), attack(seconds))


def report(name: str, idle: Latencies, attacked: Latencies, answers: Counter[str]) -> None:
    print(
        f"\n{name}: survivor page p99 {attacked.percentile(99):.1f} ms "
        f"(idle {idle.percentile(99):.1f} ms, ratio "
        f"{attacked.percentile(99) / idle.percentile(99):.2f}); attack answered {dict(answers)}"
    )


def assert_kept_answering(attacked: Latencies) -> None:
    """Every survivor request answered 200, none after waiting for a connection as long as
    a starved pool would make it wait."""
    assert attacked.failed == 0
    assert max(attacked.ms) < ACQUIRE_TIMEOUT_S * 1000


async def test_a_login_flood_is_refused_cheaply_and_survivors_keep_their_pages(site: Site) -> None:
    base = site.server.base_url
    idle = await paced_latencies(site.page, MEASURE_S)
    attacked, answers = await during(site, lambda s: login_flood(base, s), MEASURE_S + 2)
    report("login flood, 100 a second from new addresses", idle, attacked, answers)
    assert_kept_answering(attacked)
    assert set(answers) <= {"401", "503"}, answers
    assert answers["503"] > answers["401"]  # the argon2id lane is full: the rest refused
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        refused = await client.post(
            "/staff/login",
            data={"email": "x@example.org", "password": "x"},
            headers={"X-Forwarded-For": "10.9.9.9"},
        )
    assert refused.status_code in (401, 503)  # the flood over, the lane drains


async def test_slow_bodies_are_cut_off_and_hold_no_connection(site: Site) -> None:
    base = site.server.base_url
    idle = await paced_latencies(site.page, MEASURE_S)
    seconds = BODY_DEADLINE_S + 2  # a byte every two seconds buys next to no time
    attacked, answers = await during(site, lambda s: slow_bodies(base, s), seconds)
    report("20 slow-body clients on a staff POST", idle, attacked, answers)
    assert_kept_answering(attacked)
    assert answers["408"] >= 20  # each cut off at the body deadline
    assert set(answers) <= {"408"}, answers


async def test_worst_case_passphrases_wait_in_their_lane_and_survivors_do_not(
    site: Site,
) -> None:
    base = site.server.base_url
    idle = await paced_latencies(site.page, MEASURE_S)
    attacked, answers = await during(
        site, lambda s: hostile_passphrases(base, site.links, s), MEASURE_S + 2
    )
    report("worst-case passphrases, 5 a second to valid links", idle, attacked, answers)
    assert_kept_answering(attacked)
    assert set(answers) <= {"303", "400", "503"}, answers
    assert answers["503"] > 0  # the strength lane is full: the rest refused at once
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        unknown = await client.post(
            "/staff/set-password/not-a-link",
            data={"password": "x" * 5000, "again": "x" * 5000},
        )
    assert unknown.status_code in (404, 503)  # no link, no strength check


def most_checks(seconds: float) -> int:
    """How many passphrases one account can have checked in ``seconds``, by the schedule of
    waits (each check claims the account; the next waits ``wait_after`` the failures)."""
    checks, elapsed = 0, dt.timedelta(0)
    while elapsed <= dt.timedelta(seconds=seconds):
        checks += 1
        elapsed += wait_after(checks)
    return checks


async def test_eight_parallel_guessers_get_a_handful_of_guesses(
    site: Site, conn: Connection
) -> None:
    seconds = 20
    answers = await guessers(site.server.base_url, TARGET_EMAIL, seconds)
    checked = await checked_guesses(conn)
    print(
        f"\neight parallel guessers, {seconds} s: {checked} passphrases checked of "
        f"{sum(answers.values())} attempts answered {dict(answers)}"
    )
    assert set(answers) <= {"401", "503"}, answers
    assert sum(answers.values()) > 100  # they did guess, as fast as they were answered
    assert FREE_FAILURES <= checked <= most_checks(seconds) + 1
    failures = await conn.fetchval(
        "SELECT sum(attempts) FROM login_failures f JOIN users u ON u.id = f.user_id "
        "WHERE u.email = $1",
        TARGET_EMAIL,
    )
    # Each refused guess counted for the admins; at the deadline each guesser's request in
    # flight is cut, and may have been counted without its answer being read.
    assert answers["401"] <= failures <= answers["401"] + GUESSERS
