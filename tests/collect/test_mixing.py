"""Nothing joinable: 200 answers posted in a known order through the web (sealed in the browser
and not, single-use and open links) and by SMS, between staff actions and job runs that leave
timestamped rows. Before mixing, the transaction that stored an answer wrote nothing else that
a copy of the database could join to it; after `feedback jobs run mix-submissions`, neither
system columns, physical order nor a pg_dump order them, date them or link them to anything."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import subprocess
from typing import Any

import httpx

from feedback.aggregate.keys import UnlockedKey
from feedback.aggregate.releases import Scope
from feedback.aggregate.unseal import count_period
from feedback.cells import Layout
from feedback.collect.jobs import jobs as collect_jobs
from feedback.db import Connection, Pool
from feedback.envelope import Envelope, from_plaintext
from feedback.jobs import run_now, run_once
from feedback.periods import Period
from feedback.publish.audit import record
from feedback.publish.invitations import create_batch, create_open_link
from feedback.sealing import seal
from feedback.surveys import FIRST_VERSION, load_survey
from feedback.tokens import hash_receipt, hash_token
from tests import factories
from tests.cli import run_feedback
from tests.collect.conftest import SECRETS
from tests.collect.test_sms import text
from tests.live import PG_DUMP

SURVEY = load_survey(FIRST_VERSION)
ENCODED = ("believed", "respected", "safe_services", "safe_now")  # SMS questions 1, 2, 3, 4
ANSWERED = 200
SMS_EVERY = 5  # every fifth answer comes by SMS
TO = "+15550009999"
# Every table a row of which a survivor's action, a staff action or a job can write.
OTHERS = (
    "invitations",
    "invitation_batches",
    "sms_sessions",
    "job_runs",
    "audit_log",
    "staff_sessions",
    "releases",
    "privacy_ledger",
)


def digits(index: int) -> list[int]:
    """The arrival index written into the answers (base 5, on four questions)."""
    return [1 + (index // 5**place) % 5 for place in range(len(ENCODED))]


def index_of(answers: dict[str, Any]) -> int:
    return sum((answers[q] - 1) * 5**place for place, q in enumerate(ENCODED))


def spearman(ranks: list[int]) -> float:
    """Rank correlation of arrival order with the order given (a permutation of 0..n-1)."""
    n = len(ranks)
    return 1 - 6 * sum((i - r) ** 2 for i, r in enumerate(ranks)) / (n * (n * n - 1))


async def post_web(
    survivor: httpx.AsyncClient, keyed: factories.KeyedTenant, url: str, index: int, sealed: bool
) -> str:
    answers = dict(zip(ENCODED, digits(index), strict=True))
    if sealed:
        box = seal(
            keyed.private_key.public_key,
            Envelope("rights-based", 1, "en", answers).to_plaintext(),
        )
        data = {"sealed": base64.b64encode(box).decode(), "key_id": str(keyed.tenant.key_id)}
    else:
        data = {f"q.{q}": str(v) for q, v in answers.items()}
    response = await survivor.post(url, data=data)
    assert response.status_code == 200, response.text
    found = re.search(r'<p class="code">([0-9A-Z-]+)</p>', response.text)
    assert found is not None
    return found[1]


async def answer_by_sms(
    conn: Connection, survivor: httpx.AsyncClient, keyed: factories.KeyedTenant, index: int
) -> None:
    batch = await create_batch(
        conn,
        program_id=keyed.tenant.program_id,
        count=1,
        medium="sms",
        sms_code_key=SECRETS.sms_code_key,
    )
    sender = f"+1555{index:07d}"
    assert (await text(survivor, batch.tokens[0], sender=sender))[0] == 200
    for answer in [*digits(index), 0, 0]:  # the last two SMS questions skipped
        status, _ = await text(survivor, str(answer), sender=sender)
        assert status == 200


async def rows_in_order(conn: Connection, order: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in await conn.fetch(
            f"SELECT id, xmin::text AS xmin, ctid, ciphertext FROM submissions ORDER BY {order}"
        )
    ]


def arrival(keyed: factories.KeyedTenant, rows: list[dict[str, Any]]) -> list[int]:
    key = UnlockedKey(keyed.tenant.key_id, keyed.private_key)
    return [index_of(dict(from_plaintext(key.open(r["ciphertext"])).answers)) for r in rows]


def dump_order(database_url: str, ids: dict[str, int]) -> list[int]:
    """Arrival indices in the order pg_dump writes the rows."""
    dumped = subprocess.run(
        [str(PG_DUMP), "--data-only", "--table=submissions", database_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = [ids[m] for m in re.findall(r"^([0-9a-f-]{36})\t", dumped, flags=re.M) if m in ids]
    assert len(found) == len(ids)
    return found


async def joined(conn: Connection) -> dict[str, int]:
    """How many submissions share an xmin with a row of each other table."""
    found = {}
    for table in OTHERS:
        found[table] = await conn.fetchval(
            f"SELECT count(*) FROM submissions s JOIN {table} o ON o.xmin::text = s.xmin::text"
        )
    return found


async def test_answers_are_neither_joinable_nor_ordered_after_mixing(
    conn: Connection,
    survivor: httpx.AsyncClient,
    staff_pool: Pool,
    worker_pool: Pool,
    database_url: str,
) -> None:
    keyed = await factories.keyed_tenant(conn)
    await conn.execute("UPDATE programs SET languages = '{en}'")
    await conn.execute("UPDATE organisations SET sms_number = $1", TO)
    # Several posters: each takes five answers per client in ten minutes.
    posters = [
        f"/s/{await create_open_link(conn, program_id=keyed.tenant.program_id)}" for _ in range(8)
    ]
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=ANSWERED)
    admin = await factories_admin(conn, keyed.tenant)
    purge = next(job for job in collect_jobs() if job.name == "purge-idle-sms-sessions")
    started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    receipts = {}
    for index in range(ANSWERED):
        if index % SMS_EVERY == SMS_EVERY - 1:
            await answer_by_sms(conn, survivor, keyed, index)
        else:
            url = posters[index // 7 % 8] if index % 7 == 0 else f"/s/{batch.tokens[index]}"
            receipts[index] = await post_web(survivor, keyed, url, index, sealed=index % 2 == 0)
        if index % 10 == 0:  # staff at work and the worker's jobs, between the answers
            async with staff_pool.acquire() as staff:
                await record(
                    staff,
                    organisation_id=keyed.tenant.organisation_id,
                    user_id=admin,
                    action="release.view",
                    subject=str(index),
                )
            assert await run_once(worker_pool, purge, started + dt.timedelta(minutes=5 * index))

    # The transaction that stored each answer wrote nothing else a copy could join to it.
    assert await joined(conn) == dict.fromkeys(OTHERS, 0)
    spent = [hash_token(t) for i, t in enumerate(batch.tokens) if i in receipts and i % 7]
    assert not await conn.fetchval(
        "SELECT count(*) FROM invitations WHERE token_hash = ANY($1::bytea[])", spent
    )
    # Before mixing, the order is all there: this is what the test must see go away.
    before = arrival(keyed, await rows_in_order(conn, "ctid"))
    assert len(before) == ANSWERED
    assert spearman(before) > 0.99
    assert len({r["xmin"] for r in await rows_in_order(conn, "ctid")}) > ANSWERED / 2

    mixed = run_feedback("jobs", "run", "mix-submissions", database_url=database_url)
    assert mixed.returncode == 0, mixed.stderr
    assert "mix-submissions:" in mixed.stdout

    rows = await rows_in_order(conn, "ctid")
    assert sorted(arrival(keyed, rows)) == list(range(ANSWERED))  # nothing lost
    assert len({r["xmin"] for r in rows}) == 1  # one transaction: xmin orders nothing
    assert await joined(conn) == dict.fromkeys(OTHERS, 0)
    by_position = arrival(keyed, rows)
    ids = {str(r["id"]): index for r, index in zip(rows, by_position, strict=True)}
    by_dump = dump_order(database_url, ids)
    # A random order: |rho| of a permutation of 200 is above 0.3 about once in 30,000 runs.
    assert abs(spearman(by_position)) < 0.3, spearman(by_position)
    assert abs(spearman(by_dump)) < 0.3, spearman(by_dump)
    assert await conn.fetchval("SELECT bool_and(mixed) FROM submissions")
    # Timestamped rows of the job runs and the audit log date nothing: no submission's xmin
    # falls between theirs.
    assert not await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM submissions s, audit_log a
                        WHERE s.xmin::text::bigint < a.xmin::text::bigint)
        """
    )

    # Withdrawal still works on a moved row.
    withdrawn = await survivor.post("/withdraw", data={"code": receipts[0]})
    assert withdrawn.status_code == 200
    assert await conn.fetchval("SELECT count(*) FROM submissions") == ANSWERED - 1
    assert not await conn.fetchval(
        "SELECT count(*) FROM submissions WHERE receipt_hash = $1",
        hash_receipt(SECRETS.phone_hmac, receipts[0]),
    )


async def factories_admin(conn: Connection, t: factories.Tenant) -> Any:
    return await conn.fetchval(
        "INSERT INTO users (organisation_id, email, role) VALUES ($1, 'admin@org.example', "
        "'admin') RETURNING id",
        t.organisation_id,
    )


async def test_nothing_is_lost_while_answers_arrive_and_withdraw_during_mixes(
    conn: Connection,
    survivor: httpx.AsyncClient,
    worker_pool: Pool,
    worker_conn: Connection,
) -> None:
    keyed = await factories.keyed_tenant(conn)
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=63)
    mix = next(job for job in collect_jobs() if job.name == "mix-submissions")
    first = [
        await post_web(survivor, keyed, f"/s/{batch.tokens[i]}", i, sealed=True) for i in range(20)
    ]

    async def mixes() -> None:
        for _ in range(8):
            await run_now(worker_pool, mix)
            await asyncio.sleep(0)

    async def arrivals() -> list[str]:
        return [
            await post_web(survivor, keyed, f"/s/{batch.tokens[i]}", i, sealed=i % 2 == 0)
            for i in range(20, 60)
        ]

    async def withdrawals() -> list[int]:
        statuses = []
        for code in first[:10]:
            statuses.append((await survivor.post("/withdraw", data={"code": code})).status_code)
        return statuses

    _, later, withdrawn = await asyncio.gather(mixes(), arrivals(), withdrawals())
    assert withdrawn == [200] * 10  # every withdrawal found its row, moved or not
    assert len(later) == 40
    rows = await rows_in_order(conn, "id")
    assert sorted(arrival(keyed, rows)) == list(range(10, 60))  # every other answer is kept
    # Aggregation counts mixed and unmixed rows alike.
    for i in range(60, 63):
        await post_web(survivor, keyed, f"/s/{batch.tokens[i]}", i, sealed=True)
    assert await conn.fetchval("SELECT count(*) FROM submissions WHERE NOT mixed") >= 3
    assert await conn.fetchval("SELECT count(*) FROM submissions WHERE mixed") > 0
    week = await conn.fetchval("SELECT current_iso_week()")
    scope = Scope(
        keyed.tenant.organisation_id,
        keyed.tenant.program_id,
        keyed.tenant.survey_id,
        Period.parse(f"{week:%Y-%m}"),
    )
    counted = await count_period(
        worker_conn,
        scope,
        layout=Layout.plan(SURVEY, list(ENCODED)),
        keys={keyed.tenant.key_id: UnlockedKey(keyed.tenant.key_id, keyed.private_key)},
    )
    assert counted.counted == 53
