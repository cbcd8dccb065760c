"""Opening a period's submissions and counting them: sealed boxes are streamed from
PostgreSQL with a server-side cursor (memory stays flat however many there are), opened with
the organisation's unlocked keys, checked against their survey version and tallied. Whatever
does not open or is not a valid envelope is quarantined: counted, never an answer, never a
crash. Comments are dropped here: free text is never released."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from feedback.aggregate.keys import CannotOpen, UnlockedKey
from feedback.aggregate.privacy import Layout, Tally
from feedback.aggregate.releases import Scope
from feedback.db import Connection
from feedback.envelope import InvalidEnvelope, from_plaintext
from feedback.surveys import InvalidAnswers, Survey

PREFETCH = 2000


@dataclass(frozen=True, slots=True)
class Counted:
    tally: Tally
    counted: int
    quarantined: int


async def count_period(
    conn: Connection,
    scope: Scope,
    *,
    survey: Survey,
    layout: Layout,
    keys: Mapping[uuid.UUID, UnlockedKey],
) -> Counted:
    tally = Tally(layout)
    counted = quarantined = 0
    first, last = scope.period.weeks()
    async with conn.transaction():  # a server-side cursor lives in a transaction
        cursor = conn.cursor(
            """
            SELECT key_id, ciphertext FROM submissions
             WHERE organisation_id = $1 AND survey_id = $2
               AND ($3::uuid IS NULL OR program_id = $3)
               AND received_week >= $4 AND received_week < $5
            """,
            scope.organisation_id,
            scope.survey_id,
            scope.program_id,
            first,
            last,
            prefetch=PREFETCH,
        )
        async for row in cursor:
            answers = _open(row["key_id"], row["ciphertext"], keys, survey)
            if answers is None:
                quarantined += 1
            else:
                tally.add(answers)
                counted += 1
    return Counted(tally, counted, quarantined)


def _open(
    key_id: uuid.UUID, ciphertext: bytes, keys: Mapping[uuid.UUID, UnlockedKey], survey: Survey
) -> dict[str, int | str] | None:
    key = keys.get(key_id)
    if key is None:
        return None
    try:
        envelope = from_plaintext(key.open(ciphertext))
        if (envelope.survey, envelope.survey_version) != (survey.slug, survey.version):
            return None
        return survey.check_answers(envelope.answers, None, comments=False)
    except (CannotOpen, InvalidEnvelope, InvalidAnswers):
        return None


async def privacy_unit(conn: Connection, scope: Scope) -> dict[str, Any]:
    """What one unit of the guarantee is, from how invitations were issued (staff's data),
    never from which submissions arrived."""
    has_open_link = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM invitations
                        WHERE organisation_id = $1 AND kind = 'open'
                          AND ($2::uuid IS NULL OR program_id = $2))
        """,
        scope.organisation_id,
        scope.program_id,
    )
    if has_open_link:
        return {
            "privacy_unit": "submission",
            "note": "Open (poster) links were offered: the guarantee is per submission, "
            "not per person.",
        }
    return {"privacy_unit": "invitation", "note": "One single-use invitation per survivor."}
