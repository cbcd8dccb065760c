"""Every SQL statement of the survivor side."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from feedback.db import Connection

Channel = Literal["web", "web_nojs", "sms"]


@dataclass(frozen=True, slots=True)
class Invitation:
    id: uuid.UUID
    kind: Literal["single", "open"]
    organisation_id: uuid.UUID
    program_id: uuid.UUID
    survey_id: uuid.UUID
    definition: dict[str, Any]
    languages: tuple[str, ...]
    comments_enabled: bool
    key_id: uuid.UUID | None
    public_key: bytes | None
    expired: bool
    used: bool


async def select_invitation(conn: Connection, *, token_hash: bytes) -> Invitation | None:
    """The invitation, its survey and program settings, and the organisation's current key."""
    row = await conn.fetchrow(
        """
        SELECT i.id, i.kind, i.organisation_id, i.program_id, i.survey_id,
               s.definition, p.languages, o.comments_enabled,
               k.id AS key_id, k.public_key,
               (i.revoked_at IS NOT NULL OR i.expires_at <= now()) AS expired,
               (i.used_week IS NOT NULL) AS used
          FROM invitations i
          JOIN surveys s ON s.id = i.survey_id
          JOIN programs p ON p.id = i.program_id
          JOIN organisations o ON o.id = i.organisation_id
          LEFT JOIN collection_keys k
                 ON k.organisation_id = i.organisation_id AND k.retired_at IS NULL
         WHERE i.token_hash = $1
        """,
        token_hash,
    )
    if row is None:
        return None
    values = dict(row)
    values["languages"] = tuple(values["languages"])
    return Invitation(**values)


async def is_organisation_key(
    conn: Connection, *, organisation_id: uuid.UUID, key_id: uuid.UUID
) -> bool:
    """Whether ``key_id`` is one of the organisation's collection keys, current or retired."""
    found = await conn.fetchval(
        "SELECT true FROM collection_keys WHERE id = $1 AND organisation_id = $2",
        key_id,
        organisation_id,
    )
    return bool(found)


async def consume_invitation(conn: Connection, *, invitation_id: uuid.UUID, week: dt.date) -> bool:
    """Mark a single-use invitation used; False if it already was (or expired meanwhile).
    Run it in the transaction that stores the submission: a concurrent submit waits here for
    the first to commit, then finds the invitation used."""
    used = await conn.fetchval(
        """
        UPDATE invitations SET used_week = $2
         WHERE id = $1 AND kind = 'single' AND used_week IS NULL
           AND revoked_at IS NULL AND expires_at > now()
        RETURNING true
        """,
        invitation_id,
        week,
    )
    return bool(used)


async def insert_submission(
    conn: Connection,
    *,
    invitation: Invitation,
    key_id: uuid.UUID,
    channel: Channel,
    week: dt.date,
    ciphertext: bytes,
    receipt_hash: bytes | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO submissions (organisation_id, program_id, survey_id, key_id, channel,
                                 open_link, received_week, ciphertext, receipt_hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        invitation.organisation_id,
        invitation.program_id,
        invitation.survey_id,
        key_id,
        channel,
        invitation.kind == "open",
        week,
        ciphertext,
        receipt_hash,
    )


async def select_latest_notes(
    conn: Connection, *, program_id: uuid.UUID, language: str, limit: int = 3
) -> list[str]:
    """The program's latest "you said, we did" notes in ``language`` (English otherwise)."""
    rows = await conn.fetch(
        """
        SELECT coalesce(wanted.body, english.body) AS body
          FROM notes n
          LEFT JOIN note_texts wanted ON wanted.note_id = n.id AND wanted.language = $2
          LEFT JOIN note_texts english ON english.note_id = n.id AND english.language = 'en'
         WHERE n.program_id = $1 AND n.withdrawn_at IS NULL
           AND coalesce(wanted.body, english.body) IS NOT NULL
         ORDER BY n.created_at DESC
         LIMIT $3
        """,
        program_id,
        language,
        limit,
    )
    return [row["body"] for row in rows]


WithdrawOutcome = Literal["deleted", "counted", "unknown"]


async def withdraw_submission(conn: Connection, *, receipt_hash: bytes) -> WithdrawOutcome:
    """Delete the submission with this receipt unless a release has already counted it."""
    async with conn.transaction():
        counted = await conn.fetchval(
            "SELECT included_in_release FROM submissions WHERE receipt_hash = $1 FOR UPDATE",
            receipt_hash,
        )
        if counted is None:
            return "unknown"
        if counted:
            return "counted"
        await conn.execute("DELETE FROM submissions WHERE receipt_hash = $1", receipt_hash)
    return "deleted"
