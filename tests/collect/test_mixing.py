"""Nothing joinable: 200 answers posted in a known order through the web (sealed in the browser
and not, single-use and open links) and by SMS, between staff actions and job runs that leave
timestamped rows. Before mixing, the transaction that stored an answer wrote nothing else that
a copy of the database could join to it; after `feedback jobs run mix-submissions`, neither
system columns, physical order nor a pg_dump order them, date them or link them to anything."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import uuid
from typing import Any

import httpx
from nacl.public import PrivateKey
from starlette.responses import Response

from feedback.aggregate import jobs as aggregate_jobs
from feedback.aggregate.keys import CannotOpen, UnlockedKey
from feedback.aggregate.releases import Scope
from feedback.aggregate.unseal import count_period
from feedback.cli.publishing import publications_job
from feedback.collect.jobs import DEFAULT_MIX_EVERY
from feedback.collect.jobs import jobs as collect_jobs
from feedback.db import Connection, Pool
from feedback.envelope import Envelope, from_plaintext
from feedback.jobs import Job, build_scheduler, run_now
from feedback.keyrows import insert_key
from feedback.publish import jobs as publish_jobs
from feedback.publish.accounts import claim, load_staff, login_waits, settle
from feedback.publish.audit import record
from feedback.publish.invitations import create_batch, create_open_link
from feedback.publish.sessions import Sessions
from feedback.sealing import seal
from feedback.stats.cells import Layout
from feedback.stats.periods import Period
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


async def test_no_copy_dates_an_answer_and_mixing_orders_nothing(
    conn: Connection,
    survivor: httpx.AsyncClient,
    staff_pool: Pool,
    worker_pool: Pool,
    database_url: str,
) -> None:
    """200 answers by the web and by SMS while the worker's jobs run on their schedules (a
    three-hundredth of them) and staff work. A copy taken before the mix dates no answer more
    finely than the mixing interval (the audit's bracketing over every row that says when,
    joined by xmin order), and nothing written with an answer joins it; after the mix,
    nothing orders the answers or dates them within their week."""
    started = dt.datetime.now(dt.UTC)
    keyed = await factories.keyed_tenant(conn)
    await conn.execute("UPDATE programs SET languages = '{en}'")
    await conn.execute("UPDATE organisations SET sms_number = $1", TO)
    # Several posters: each takes five answers per client in ten minutes.
    posters = [
        f"/s/{await create_open_link(conn, program_id=keyed.tenant.program_id)}" for _ in range(8)
    ]
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=ANSWERED)
    admin = await factories_admin(conn, keyed.tenant)
    scheduler = build_scheduler(worker_pool, compressed_jobs(database_url))
    scheduler.start()
    receipts = {}
    try:
        for index in range(ANSWERED):
            if index % SMS_EVERY == SMS_EVERY - 1:
                await answer_by_sms(conn, survivor, keyed, index)
            else:
                url = posters[index // 7 % 8] if index % 7 == 0 else f"/s/{batch.tokens[index]}"
                receipts[index] = await post_web(survivor, keyed, url, index, sealed=index % 2 == 0)
            if index % 10 == 0:
                await staff_at_work(staff_pool, keyed.tenant, admin, index)
    finally:
        scheduler.shutdown(wait=False)
    ran = {r["job"] for r in await conn.fetch("SELECT job FROM job_runs")}
    assert {"purge-idle-sms-sessions", "expire-invitations", "delete-staff-leftovers"} <= ran

    # A copy before the mix: no answer is dated within the mixing interval.
    anchors = await anchors_in(conn, started)
    assert anchors  # (the day of every staff action and job run is there)
    for row in await conn.fetch("SELECT xmin::text::bigint AS xid FROM submissions"):
        low, high = bracket(anchors, row["xid"])
        assert high - low >= DEFAULT_MIX_EVERY, (row["xid"], low, high)
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
    async with staff_pool.acquire() as staff:  # staff at work after the mix, too
        await record(staff, organisation_id=keyed.tenant.organisation_id, user_id=admin, action="x")

    rows = await rows_in_order(conn, "ctid")
    assert sorted(arrival(keyed, rows)) == list(range(ANSWERED))  # nothing lost
    assert len({r["xmin"] for r in rows}) == 1  # one transaction: xmin orders nothing
    assert await joined(conn) == dict.fromkeys(OTHERS, 0)
    # After the mix, what the rows' xmin bounds is the mix, and it falls no earlier than the
    # end of the day the copy is taken, or of the week (which every row gives anyway).
    today_ends = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), dt.UTC) + DAY
    anchors = await anchors_in(conn, started)
    for row in await conn.fetch(
        "SELECT xmin::text::bigint AS xid, received_week AS week FROM submissions"
    ):
        _, high = bracket(anchors, row["xid"])
        week_ends = dt.datetime.combine(row["week"], dt.time(), dt.UTC) + 7 * DAY
        assert high >= min(today_ends, week_ends), (row["xid"], high)
    by_position = arrival(keyed, rows)
    ids = {str(r["id"]): index for r, index in zip(rows, by_position, strict=True)}
    by_dump = dump_order(database_url, ids)
    # A random order: |rho| of a permutation of 200 is above 0.3 about once in 30,000 runs.
    assert abs(spearman(by_position)) < 0.3, spearman(by_position)
    assert abs(spearman(by_dump)) < 0.3, spearman(by_dump)
    assert await conn.fetchval("SELECT bool_and(mixed) FROM submissions")

    # Withdrawal still works on a moved row.
    withdrawn = await survivor.post("/withdraw", data={"code": receipts[0]})
    assert withdrawn.status_code == 200
    assert await conn.fetchval("SELECT count(*) FROM submissions") == ANSWERED - 1
    assert not await conn.fetchval(
        "SELECT count(*) FROM submissions WHERE receipt_hash = $1",
        hash_receipt(SECRETS.phone_hmac, receipts[0]),
    )


DAY = dt.timedelta(days=1)
# A time of day written in text: 2026-12-08T14:03, 2026-12-08 14:03.
TIME_IN_TEXT = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?")
Anchor = tuple[int, dt.datetime, dt.datetime]  # xid, and when its transaction ran: [from, to)


async def anchors_in(conn: Connection, since: dt.datetime) -> list[Anchor]:
    """The audit's view of a copy: every row of every table but submissions that says when,
    with the moments it allows: a time is that moment, a date its day, a time of day written
    in any text (or JSON) its minute. Only moments from ``since`` to now are kept: others
    cannot be when a row written meanwhile was written."""
    columns = await conn.fetch(
        """
        SELECT c.table_name, c.column_name, c.data_type
          FROM information_schema.columns c
          JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND c.table_name <> 'submissions'
           AND (c.data_type IN ('date', 'text', 'jsonb', 'json', 'character varying')
                OR c.data_type LIKE 'timestamp%' OR c.data_type LIKE 'time %')
        """
    )
    now = dt.datetime.now(dt.UTC)
    found: list[Anchor] = []
    for column in columns:
        table, name, kind = column["table_name"], column["column_name"], column["data_type"]
        rows = await conn.fetch(
            f'SELECT xmin::text::bigint AS xid, "{name}" AS value FROM "{table}" '
            f'WHERE "{name}" IS NOT NULL'
        )
        for row in rows:
            for low, high in _moments(kind, row["value"]):
                if high > since and low <= now:
                    found.append((row["xid"], low, high))
    return found


def _moments(kind: str, value: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    if kind == "date":
        start = dt.datetime.combine(value, dt.time(), dt.UTC)
        return [(start, start + DAY)]
    if kind.startswith("timestamp"):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return [(moment, moment + dt.timedelta(microseconds=1))]
    if kind.startswith("time "):
        raise AssertionError("a time of day column: it would date whatever wrote it")
    text = value if isinstance(value, str) else json.dumps(value)
    found = []
    for day, hour, minute, _ in TIME_IN_TEXT.findall(text):
        moment = dt.datetime.fromisoformat(f"{day}T{hour}:{minute}").replace(tzinfo=dt.UTC)
        found.append((moment, moment + dt.timedelta(minutes=1)))
    return found


def bracket(anchors: list[Anchor], xid: int) -> tuple[dt.datetime, dt.datetime]:
    """When transaction ``xid`` ran, as the anchors on either side of it bound it."""
    low = max((start for x, start, _ in anchors if x < xid), default=EARLIEST)
    high = min((end for x, _, end in anchors if x > xid), default=LATEST)
    return low, high


EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def compressed_jobs(database_url: str) -> list[Job]:
    """The worker's jobs but the mix, each running 300 times as often as it would."""
    jobs = [
        *(job for job in collect_jobs(SECRETS.phone_hmac) if job.name != "mix-submissions"),
        *aggregate_jobs.JOBS,
        *publish_jobs.JOBS,
        publications_job(None, database_url),
    ]
    return [dataclasses.replace(job, every=job.every / 300) for job in jobs]


async def staff_at_work(staff_pool: Pool, t: factories.Tenant, admin: Any, index: int) -> None:
    """What staff do between the answers: a login that fails and one that opens a session, a
    batch of links, an audited page view."""
    async with staff_pool.acquire() as staff:
        waits = login_waits(b"s" * 32)
        email = await staff.fetchval("SELECT email FROM users WHERE id = $1", admin)
        candidate = await claim(staff, waits, email)
        await settle(staff, waits, candidate, right=False)
        account = await load_staff(staff, admin)
        assert account is not None
        await Sessions(b"s" * 32, https=False, path="/staff").start(staff, account, Response())
        await create_batch(staff, program_id=t.program_id, count=2)
        await record(
            staff,
            organisation_id=t.organisation_id,
            user_id=admin,
            action="release.view",
            subject=str(index),
        )


async def factories_admin(conn: Connection, t: factories.Tenant) -> Any:
    return await conn.fetchval(
        "INSERT INTO users (organisation_id, email, role, password_hash) "
        "VALUES ($1, 'admin@org.example', 'admin', '$argon2id$never checked here') RETURNING id",
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
    mix = next(job for job in collect_jobs(SECRETS.phone_hmac) if job.name == "mix-submissions")
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


async def test_a_rotation_during_a_week_of_answers_orders_none_of_them(
    conn: Connection, survivor: httpx.AsyncClient, worker_conn: Connection
) -> None:
    """Ten answers before a key rotation and ten after, in one week: no column of theirs
    tells the two apart (no row names its key), the keys keep the week and nothing finer,
    and the worker opens all twenty with the week's keys."""
    old = await factories.keyed_tenant(conn)
    batch = await create_batch(conn, program_id=old.tenant.program_id, count=20)
    for i in range(10):
        await post_web(survivor, old, f"/s/{batch.tokens[i]}", i, sealed=i % 2 == 0)
    private = PrivateKey.generate()
    async with conn.transaction():
        new_id = await insert_key(
            conn,
            "collection_keys",
            organisation_id=old.tenant.organisation_id,
            public_key=bytes(private.public_key),
            wrapped=None,
            retire_current=True,
        )
    new = factories.KeyedTenant(dataclasses.replace(old.tenant, key_id=new_id), private)
    for i in range(10, 20):
        await post_web(survivor, new, f"/s/{batch.tokens[i]}", i, sealed=i % 2 == 0)

    columns = [
        c["column_name"]
        for c in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'submissions'"
        )
        if c["column_name"] not in ("id", "ciphertext", "receipt_hash")  # random for each row
    ]
    rows = [dict(r) for r in await conn.fetch("SELECT * FROM submissions")]
    before = [r for r in rows if opens(old.private_key, r["ciphertext"])]
    after = [r for r in rows if opens(private, r["ciphertext"])]
    assert (len(before), len(after)) == (10, 10)
    for column in columns:
        assert {repr(r[column]) for r in before} == {repr(r[column]) for r in after}, column
    week = await conn.fetchval("SELECT current_iso_week()")
    keys = await conn.fetch("SELECT created_week, retired_week FROM collection_keys")
    assert {k["created_week"] for k in keys} | {k["retired_week"] for k in keys} <= {week, None}

    scope = Scope(
        old.tenant.organisation_id,
        old.tenant.program_id,
        old.tenant.survey_id,
        Period.parse(f"{week:%Y-%m}"),
    )
    counted = await count_period(
        worker_conn,
        scope,
        layout=Layout.plan(SURVEY, list(ENCODED)),
        keys={
            old.tenant.key_id: UnlockedKey(old.tenant.key_id, old.private_key),
            new_id: UnlockedKey(new_id, private),
        },
    )
    assert (counted.counted, counted.quarantined) == (20, 0)


def opens(key: PrivateKey, ciphertext: bytes) -> bool:
    try:
        UnlockedKey(uuid.uuid4(), key).open(ciphertext)
    except CannotOpen:
        return False
    return True


async def test_a_week_is_mixed_once_more_after_it_ends(conn: Connection, worker_pool: Pool) -> None:
    """Last week's rows, mixed during the week, are mixed again once it has ended, whatever
    arrived since: their last mix then falls after the week, not at its last arrival. The
    current week's rows are rewritten at every run, new rows or not: their shared xmin is the
    latest mix's, which says nothing of when the newest of them came."""
    t = await factories.tenant(conn)
    this_week = await conn.fetchval("SELECT current_iso_week()")
    last_week = this_week - dt.timedelta(days=7)
    for week in (last_week, this_week):
        await factories.submission(conn, t, week=week, ciphertext=os.urandom(1072))
    await conn.execute("UPDATE submissions SET mixed = true")  # mixed during their week
    xmins = {
        r["received_week"]: r["xmin"]
        for r in await conn.fetch("SELECT received_week, xmin::text FROM submissions")
    }
    mix = next(job for job in collect_jobs(SECRETS.phone_hmac) if job.name == "mix-submissions")
    await run_now(worker_pool, mix)
    after = {
        r["received_week"]: r
        for r in await conn.fetch("SELECT received_week, xmin::text, week_closed FROM submissions")
    }
    assert after[last_week]["xmin"] != xmins[last_week]
    assert after[last_week]["week_closed"]
    assert after[this_week]["xmin"] != xmins[this_week]  # nothing new, rewritten all the same
    await run_now(worker_pool, mix)  # last week is closed: not rewritten again
    again = {
        r["received_week"]: r["xmin"]
        for r in await conn.fetch("SELECT received_week, xmin::text FROM submissions")
    }
    assert again[last_week] == after[last_week]["xmin"]
    assert again[this_week] != after[this_week]["xmin"]
