"""Hostile clients, for the abuse tests and `make bench`: a login flood from many addresses,
clients that send a staff POST's headers and then trickle its body, worst-case passphrases
posted to valid set-password links, and guessers in parallel against one account.

Each attack runs for a given time against a live `feedback serve` (started with
FEEDBACK_TRUSTED_PROXIES=127.0.0.1/32, so that the X-Forwarded-For each request carries is the
address the server counts) and returns how its requests were answered. ``python -m
tests.attackers`` runs a mix of them in a process of its own, so that a benchmark measures
survivor pages from a process the attack does not slow down.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from feedback.db import Connection
from feedback.publish.accounts import create_user, make_password_link
from feedback.publish.invitations import create_batch
from tests import factories

# zxcvbn's slowest kind of input: many distinct "l33t" symbols, at the length it scores.
WORST_PASSPHRASE = ("4@8({[<3691!|0$5+7%2" * 4)[:72]
FLOOD_PER_S = 100  # login posts a second, each from an address of its own
SLOW_CLIENTS = 20
PASSPHRASES_PER_S = 5
GUESSERS = 8


TARGET_EMAIL = "target@example.org"  # the account the guessers go after


@dataclass(frozen=True, slots=True)
class Targets:
    survey_token: str  # a survivor's single-use link, for the page whose latency is measured
    password_links: list[str]  # valid set-password links, for the worst-case passphrases


async def seed_targets(conn: Connection, links: int) -> Targets:
    """An organisation with a survey link, the account at TARGET_EMAIL (with a passphrase
    no guesser will find) and ``links`` invited users' set-password links."""
    keyed = await factories.keyed_tenant(conn, "attacked")
    organisation = keyed.tenant.organisation_id
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=1)
    await create_user(
        conn,
        organisation_id=organisation,
        email=TARGET_EMAIL,
        role="admin",
        password=secrets.token_urlsafe(18),
    )
    tokens = []
    for n in range(links):
        user = await create_user(
            conn, organisation_id=organisation, email=f"invited{n}@example.org", role="viewer"
        )
        tokens.append(await make_password_link(conn, organisation_id=organisation, user_id=user))
    return Targets(batch.tokens[0], tokens)


async def checked_guesses(conn: Connection) -> int:
    """Passphrases checked against the target account's hash so far (all wrong)."""
    return int(
        await conn.fetchval("SELECT failed_logins FROM users WHERE email = $1", TARGET_EMAIL)
    )


def _addresses() -> Iterator[str]:
    """A new client address per request: a botnet behind the reverse proxy."""
    for n in itertools.count(1):
        yield f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


_ADDRESSES = _addresses()
_COUNT = itertools.count()


def _login_form(email: str, password: str) -> dict[str, str]:
    return {"email": email, "password": password, "next": ""}


async def _until(seconds: float, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` again and again for ``seconds``; whatever is in flight then is cut."""
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < deadline:
            await work()

    try:
        async with asyncio.timeout(seconds):
            await loop()
    except TimeoutError:
        pass


async def _paced(
    seconds: float, per_s: float, one: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """``one()`` started ``per_s`` times a second for ``seconds``, whatever the answers' speed;
    those still unanswered then are cut."""
    tasks: set[asyncio.Task[None]] = set()

    async def tick() -> None:
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(1 / per_s)

    await _until(seconds, tick)
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def login_flood(base_url: str, seconds: float, *, per_s: int = FLOOD_PER_S) -> Counter[str]:
    """Login posts at a steady rate, each for an unknown address from a new client address."""
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def one() -> None:
            try:
                response = await client.post(
                    "/staff/login",
                    data=_login_form(f"nobody{next(_COUNT)}@example.org", "guess"),
                    headers={"X-Forwarded-For": next(_ADDRESSES)},
                )
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1

        await _paced(seconds, per_s, one)
    return statuses


async def slow_bodies(
    base_url: str, seconds: float, *, clients: int = SLOW_CLIENTS
) -> Counter[str]:
    """Clients that send a login POST's headers promising a body, then a byte every two
    seconds; each starts again as soon as the server gives up on it."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    statuses: Counter[str] = Counter()

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                (
                    "POST /staff/login HTTP/1.1\r\n"
                    f"Host: {host}:{port}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    "Content-Length: 4096\r\n"
                    f"X-Forwarded-For: {next(_ADDRESSES)}\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), timeout=2)
                except TimeoutError:
                    writer.write(b"x")
                    await writer.drain()
                    continue
                statuses[
                    line.split(b" ")[1].decode() if line.startswith(b"HTTP/") else "closed"
                ] += 1
                return
        except OSError as exc:
            statuses[type(exc).__name__] += 1
        finally:
            writer.close()

    async def keep_one() -> None:
        await _until(seconds, client)

    await asyncio.gather(*(keep_one() for _ in range(clients)))
    return statuses


async def hostile_passphrases(
    base_url: str, links: list[str], seconds: float, *, per_s: int = PASSPHRASES_PER_S
) -> Counter[str]:
    """The passphrase zxcvbn takes longest over, posted to valid links at a steady rate (a
    link is kept until a post through it is accepted): more than the strength check's lane
    can take, so that it is always full."""
    statuses: Counter[str] = Counter()
    unused = list(reversed(links))
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def post() -> None:
            if not unused:
                statuses["links used up"] += 1
                return
            token = unused.pop()
            try:
                response = await client.post(
                    f"/staff/set-password/{token}",
                    data={"password": WORST_PASSPHRASE, "again": WORST_PASSPHRASE},
                    headers={"X-Forwarded-For": next(_ADDRESSES)},
                )
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                unused.append(token)
                return
            statuses[str(response.status_code)] += 1
            if response.status_code != 303:  # refused for now: the link is still good
                unused.append(token)

        await _paced(seconds, per_s, post)
    return statuses


async def guessers(
    base_url: str, email: str, seconds: float, *, count: int = GUESSERS
) -> Counter[str]:
    """``count`` guessers against one account, each guess from a new address."""
    statuses: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def guess() -> None:
            response = await client.post(
                "/staff/login",
                data=_login_form(email, f"guess {next(_COUNT)}"),
                headers={"X-Forwarded-For": next(_ADDRESSES)},
            )
            statuses[str(response.status_code)] += 1

        await asyncio.gather(*(_until(seconds, guess) for _ in range(count)))
    return statuses


@dataclass(frozen=True, slots=True)
class Latencies:
    """Milliseconds each paced request took; failed: those not answered 200."""

    ms: list[float]
    failed: int

    def percentile(self, p: float) -> float:
        ordered = sorted(self.ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _get(url: str) -> int:
    """GET on a new connection, closed after the answer: the response's status."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        writer.write(
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


async def paced_latencies(url: str, seconds: float, *, per_s: int = 20) -> Latencies:
    """GET ``url`` at a steady rate (a new request every 1/per_s seconds, whether or not the
    last has been answered, so that a stall shows in full), each on a connection of its own
    as a survivor's phone would open it."""
    timings: list[float] = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        started = time.perf_counter()
        try:
            status = await asyncio.wait_for(_get(url), timeout=30)
        except (OSError, TimeoutError):
            status = 0
        timings.append((time.perf_counter() - started) * 1000)
        failed += status != 200

    tasks = []
    started = time.monotonic()
    for n in range(int(seconds * per_s)):
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(max(0.0, started + (n + 1) / per_s - time.monotonic()))
    await asyncio.gather(*tasks)
    return Latencies(timings, failed)


ATTACKS = ("login_flood", "slow_bodies", "hostile_passphrases")


async def _attack(
    base_url: str, links: list[str], seconds: float, attacks: list[str]
) -> dict[str, Counter[str]]:
    started = {
        "login_flood": lambda: login_flood(base_url, seconds),
        "slow_bodies": lambda: slow_bodies(base_url, seconds),
        "hostile_passphrases": lambda: hostile_passphrases(base_url, links, seconds),
    }
    answers = await asyncio.gather(*(started[name]() for name in attacks))
    return dict(zip(attacks, answers, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base_url")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--links", type=argparse.FileType(), required=True)
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated")
    args = parser.parse_args()
    links = args.links.read().split()
    attacks = args.attacks.split(",")
    json.dump(asyncio.run(_attack(args.base_url, links, args.seconds, attacks)), sys.stdout)


if __name__ == "__main__":
    main()
