from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from decimal import Decimal

import pytest
from nacl.public import PrivateKey

from feedback.aggregate.keys import UnlockedKey
from feedback.aggregate.releases import Scope, make_release
from feedback.aggregate.unseal import (
    KeysMissing,
    check_keys,
    count_period,
    counter,
    privacy_unit,
)
from feedback.db import Connection
from feedback.envelope import Envelope
from feedback.sealing import seal
from feedback.stats.cells import Layout, categories
from feedback.stats.periods import Period
from feedback.surveys import FIRST_VERSION, load_survey
from tests import factories

SURVEY = load_survey(FIRST_VERSION)
LAYOUT = Layout.plan(SURVEY, ["believed", "gender"])
IN_Q2 = dt.date(2026, 5, 4)  # a Monday
IN_Q3 = dt.date(2026, 8, 3)
IN_Q4 = dt.date(2026, 10, 5)


async def store(
    conn: Connection, t: factories.Tenant, ciphertext: bytes, week: dt.date = IN_Q3
) -> None:
    await factories.submission(conn, t, week=week, ciphertext=ciphertext)


class Recorded:
    def __init__(self) -> None:
        self.total: int | None = None
        self.read = 0

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, read: int) -> None:
        self.read += read


def sealed(key: PrivateKey, answers: dict[str, int | str], version: int = 1) -> bytes:
    envelope = Envelope("rights-based", version, "en", answers, "a comment, never released")
    return seal(key.public_key, envelope.to_plaintext())


@pytest.mark.parametrize("workers", [1, 2])
async def test_counts_valid_envelopes_and_quarantines_the_rest(
    conn: Connection, worker_conn: Connection, database_url: str, workers: int
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t, current = keyed.tenant, keyed.private_key
    retired_id = await retired_key(conn, t)
    retired = PrivateKey.generate()  # stands for the retired key's private half
    for i in range(30):
        await store(conn, t, sealed(current, {"believed": 1 + i % 5, "gender": "woman"}))
    await store(conn, t, sealed(retired, {"believed": 5}))  # the old key still opens its rows
    await store(conn, t, sealed(current, {"believed": 5}), week=IN_Q4)  # next period
    await store(conn, t, os.urandom(1072))  # garbage
    await store(conn, t, sealed(current, {"believed": 9}))  # not an answer
    await store(conn, t, sealed(current, {"believed": 3}, version=7))  # unknown version
    await store(conn, t, sealed(PrivateKey.generate(), {"believed": 3}))  # a key not ours

    scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q3"))
    progress = Recorded()
    keys = {t.key_id: UnlockedKey(t.key_id, current), retired_id: UnlockedKey(retired_id, retired)}
    counted = await count_period(
        worker_conn,
        scope,
        layout=LAYOUT,
        keys=keys,
        database_url=database_url,
        workers=workers,
        parallel_from=0,
        progress=progress,
    )

    assert counted.counted == 31
    assert counted.quarantined == 4
    believed = dict(
        zip(categories(SURVEY.question("believed")), counted.tally.counts[1:6], strict=True)
    )
    assert believed == {"agree": 13, "neither": 6, "disagree": 12, "prefer_not": 0, "skipped": 0}
    assert counted.tally.counts[0] == 31
    assert sum(counted.tally.counts) == 31 * LAYOUT.sensitivity
    assert progress.total == progress.read == 35  # every row of the period, the bad ones too


async def test_privacy_unit_follows_how_invitations_were_issued(conn: Connection) -> None:
    t = await factories.tenant(conn)
    scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q3"))
    assert (await privacy_unit(conn, scope))["privacy_unit"] == "invitation"
    await factories.open_link(conn, t)
    assert (await privacy_unit(conn, scope))["privacy_unit"] == "submission"


async def retired_key(conn: Connection, t: factories.Tenant) -> uuid.UUID:
    retired: uuid.UUID = await conn.fetchval(
        "SELECT id FROM collection_keys WHERE organisation_id = $1 AND retired_week IS NOT NULL",
        t.organisation_id,
    )
    return retired


@pytest.mark.parametrize("rows", [0, 3])
async def test_a_period_that_needs_a_key_not_unlocked_is_refused_whatever_its_rows(
    conn: Connection, worker_conn: Connection, rows: int
) -> None:
    """Which keys a period needs follows from the keys' weeks, never from its rows: with
    none of them, or some, the refusal is the same, names the key, and counts nothing."""
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    retired_id = await conn.fetchval(  # a key that took answers from June to August
        "INSERT INTO collection_keys (organisation_id, public_key, created_week, retired_week) "
        "VALUES ($1, $2, '2026-06-01', '2026-08-10') RETURNING id",
        t.organisation_id,
        bytes(PrivateKey.generate().public_key),
    )
    for _ in range(rows):
        await store(conn, t, sealed(PrivateKey.generate(), {"believed": 5}))
    await store(conn, t, sealed(keyed.private_key, {"believed": 4}))
    scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q3"))
    count = counter(
        worker_conn, scope, layout=LAYOUT, keys={t.key_id: UnlockedKey(t.key_id, keyed.private_key)}
    )
    with pytest.raises(KeysMissing) as refused:
        await count()
    assert str(retired_id) in str(refused.value)
    assert not re.search(r"\d+ (submission|row|answer)", str(refused.value))
    # Before June, no key of these took answers: that period needs none of them.
    q1 = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q1"))
    await check_keys(worker_conn, q1, {})


async def test_neighbouring_datasets_of_set_aside_rows_both_get_a_release_at_the_same_cost(
    conn: Connection, worker_conn: Connection
) -> None:
    """One valid answer and k rows that do not open, against none valid and the same k: both
    periods are released (the second's figures are noise alone), and the ledger is charged
    the same. Had the second been refused, its absence would tell the two apart."""
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    key = {t.key_id: UnlockedKey(t.key_id, keyed.private_key)}
    for _ in range(5):
        await store(conn, t, os.urandom(1072), week=IN_Q2)
        await store(conn, t, os.urandom(1072), week=IN_Q3)
    await store(conn, t, sealed(keyed.private_key, {"believed": 4}), week=IN_Q2)
    costs = []
    for period in ("2026-Q2", "2026-Q3"):
        scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse(period))
        made = await make_release(
            worker_conn,
            scope,
            layout=LAYOUT,
            epsilon=Decimal(1),
            threshold=11,
            count=counter(worker_conn, scope, layout=LAYOUT, keys=key),
        )
        assert made.created
        costs.append(
            await conn.fetchval("SELECT epsilon FROM privacy_ledger WHERE release_id = $1", made.id)
        )
    assert costs[0] == costs[1] > 0
