from __future__ import annotations

import datetime as dt
import os

from feedback.aggregate.jobs import delete_released_ciphertexts
from feedback.db import Connection
from feedback.weeks import current_week
from tests import factories


async def test_released_ciphertexts_go_after_the_grace_period(conn: Connection) -> None:
    t = await factories.tenant(conn)
    await conn.execute("UPDATE organisations SET retention_grace_days = 30")
    old = current_week() - dt.timedelta(weeks=10)
    recent = current_week() - dt.timedelta(weeks=2)
    for week, released in ((old, True), (old, False), (recent, True)):
        await factories.submission(
            conn, t, week=week, ciphertext=os.urandom(1072), included_in_release=released
        )
    outcome = await delete_released_ciphertexts(conn)
    left = await conn.fetch("SELECT received_week, included_in_release FROM submissions")
    assert outcome.startswith("deleted 1 ")
    assert sorted((r["received_week"], r["included_in_release"]) for r in left) == [
        (old, False),  # not yet counted: kept for its release
        (recent, True),  # counted, but still within the grace period
    ]
