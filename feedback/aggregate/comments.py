"""Comments, for the key holder's eyes only (`feedback comments`): opened from an ended
period's submissions, shuffled, with nothing beside them (no date, no answers, no order of
arrival), and only when there are at least as many as a release's threshold, so that no one
comment stands alone. They are never stored or released; reports show at most a noisy count.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping

from feedback.aggregate.keys import CannotOpen, KeyRing, UnlockedKey, key_weeks
from feedback.aggregate.privacy import DEFAULT_THRESHOLD
from feedback.aggregate.releases import check_ended
from feedback.db import Connection
from feedback.envelope import InvalidEnvelope, from_plaintext
from feedback.errors import FeedbackError
from feedback.stats.periods import Period

CHUNK = 2000


class CommentsRefused(FeedbackError):
    pass


async def read_comments(
    conn: Connection,
    *,
    organisation_id: uuid.UUID,
    program_id: uuid.UUID | None,
    period: Period,
    keys: Mapping[uuid.UUID, UnlockedKey],
    threshold: int = DEFAULT_THRESHOLD,
) -> list[str]:
    """The period's comments (of one program, or all), in a random order; refused when the
    organisation has comments off, the period has not ended, or there are fewer than
    ``threshold``. The reading is audited (who cannot be known here: the organisation, the
    period and the program)."""
    enabled = await conn.fetchval(
        "SELECT comments_enabled FROM organisations WHERE id = $1", organisation_id
    )
    if not enabled:
        raise CommentsRefused(
            "comments are off for this organisation, so none were asked for or kept"
        )
    await check_ended(conn, period)
    found: list[str] = []
    ring = KeyRing(list(keys.values()), await key_weeks(conn, organisation_id))
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(
            """
            SELECT received_week, ciphertext FROM submissions
             WHERE organisation_id = $1 AND ($2::uuid IS NULL OR program_id = $2)
               AND received_week >= $3 AND received_week < $4
            """,
            organisation_id,
            program_id,
            *period.weeks(),
        )
        while rows := await cursor.fetch(CHUNK):
            for week, ciphertext in rows:
                try:
                    comment = from_plaintext(ring.open(week, ciphertext)).comment
                except (CannotOpen, InvalidEnvelope):
                    continue
                if comment and comment.strip():
                    found.append(comment.strip())
    if len(found) < threshold:
        raise CommentsRefused(
            f"{period} has fewer than {threshold} comments: none are shown, so that no comment "
            "stands alone. Ask for a longer period (a year: --period 2026) or all programs."
        )
    secrets.SystemRandom().shuffle(found)
    await conn.execute(
        "INSERT INTO audit_log (organisation_id, action, subject, details) "
        "VALUES ($1, 'comments.read', $2, $3)",
        organisation_id,
        str(period),
        {"program_id": str(program_id) if program_id else None},
    )
    return found
