from __future__ import annotations

import datetime as dt
import os

import pytest
from nacl.public import PrivateKey

from feedback.aggregate.keys import UnlockedKey
from feedback.aggregate.releases import Scope
from feedback.aggregate.unseal import KeysMissing, count_period, counter, privacy_unit
from feedback.cells import Layout, categories
from feedback.db import Connection
from feedback.envelope import Envelope
from feedback.periods import Period
from feedback.sealing import seal
from feedback.surveys import FIRST_VERSION, load_survey
from tests import factories

SURVEY = load_survey(FIRST_VERSION)
LAYOUT = Layout.plan(SURVEY, ["believed", "gender"])
IN_Q3 = dt.date(2026, 8, 3)  # a Monday
IN_Q4 = dt.date(2026, 10, 5)


async def store(
    conn: Connection, t: factories.Tenant, key_id: object, ciphertext: bytes, week: dt.date = IN_Q3
) -> None:
    await factories.submission(conn, t, key_id=key_id, week=week, ciphertext=ciphertext)  # type: ignore[arg-type]


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
    retired_id = await conn.fetchval(
        "SELECT id FROM collection_keys WHERE organisation_id = $1 AND retired_at IS NOT NULL",
        t.organisation_id,
    )
    retired = PrivateKey.generate()  # stands for the retired key's private half
    for i in range(30):
        await store(conn, t, t.key_id, sealed(current, {"believed": 1 + i % 5, "gender": "woman"}))
    await store(conn, t, retired_id, sealed(retired, {"believed": 5}))  # old key still opens
    await store(conn, t, t.key_id, sealed(current, {"believed": 5}), week=IN_Q4)  # next period
    await store(conn, t, t.key_id, os.urandom(1072))  # garbage
    await store(conn, t, t.key_id, sealed(current, {"believed": 9}))  # not an answer
    await store(conn, t, t.key_id, sealed(current, {"believed": 3}, version=7))  # unknown version
    await store(conn, t, t.key_id, sealed(PrivateKey.generate(), {"believed": 3}))  # wrong key

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


async def test_a_period_holding_rows_of_a_key_not_unlocked_is_refused_naming_it(
    conn: Connection, worker_conn: Connection
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    retired_id = await conn.fetchval(
        "SELECT id FROM collection_keys WHERE organisation_id = $1 AND retired_at IS NOT NULL",
        t.organisation_id,
    )
    for _ in range(3):
        await store(conn, t, retired_id, sealed(PrivateKey.generate(), {"believed": 5}))
    await store(conn, t, t.key_id, sealed(keyed.private_key, {"believed": 4}))
    scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q3"))
    count = counter(
        worker_conn, scope, layout=LAYOUT, keys={t.key_id: UnlockedKey(t.key_id, keyed.private_key)}
    )
    with pytest.raises(KeysMissing, match=rf"3 sealed to key {retired_id}"):
        await count()


async def test_a_period_none_of_whose_rows_opens_is_refused(
    conn: Connection, worker_conn: Connection
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    for _ in range(2):
        await store(conn, t, t.key_id, os.urandom(1072))
    scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q3"))
    key = UnlockedKey(t.key_id, keyed.private_key)
    with pytest.raises(KeysMissing, match="none of the 2 submissions"):
        await counter(worker_conn, scope, layout=LAYOUT, keys={t.key_id: key})()
