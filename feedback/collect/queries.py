"""Every SQL statement of the survivor side."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from feedback.db import Connection

Channel = Literal["web", "web_nojs", "sms"]


def notes_in(notes: tuple[dict[str, str], ...], language: str) -> list[str]:
    """A program's latest "you said, we did" notes in ``language`` (else in English)."""
    found = (note.get(language) or note.get("en") for note in notes)
    return [text for text in found if text]


@dataclass(frozen=True, slots=True)
class Invitation:
    id: uuid.UUID
    kind: Literal["single", "open"]
    organisation_id: uuid.UUID
    program_id: uuid.UUID
    survey_id: uuid.UUID
    languages: tuple[str, ...]
    comments_enabled: bool
    key_id: uuid.UUID | None
    public_key: bytes | None
    expired: bool
    used: bool
    notes: tuple[dict[str, str], ...]  # programs.latest_notes: newest first, language -> text

    def notes_in(self, language: str) -> list[str]:
        return notes_in(self.notes, language)


async def select_invitation(
    conn: Connection, *, token_hash: bytes, medium: Literal["link", "sms"] = "link"
) -> Invitation | None:
    """The invitation, its survey and program settings, the organisation's current key and
    the program's latest notes: everything a survey page or post needs, in one round trip."""
    row = await conn.fetchrow(
        """
        SELECT i.id, i.kind, i.organisation_id, i.program_id, i.survey_id,
               p.languages, o.comments_enabled,
               k.id AS key_id, k.public_key,
               (i.revoked_at IS NOT NULL OR i.expires_at <= now()) AS expired,
               (i.used_week IS NOT NULL) AS used,
               p.latest_notes AS notes
          FROM invitations i
          JOIN programs p ON p.id = i.program_id
          JOIN organisations o ON o.id = i.organisation_id
          LEFT JOIN collection_keys k
                 ON k.organisation_id = i.organisation_id AND k.retired_at IS NULL
         WHERE i.token_hash = $1 AND i.medium = $2
        """,
        token_hash,
        medium,
    )
    if row is None:
        return None
    values = dict(row)
    values["languages"] = tuple(values["languages"])
    values["notes"] = tuple(values["notes"])
    return Invitation(**values)


async def select_survey_definition(conn: Connection, *, survey_id: uuid.UUID) -> dict[str, Any]:
    definition: dict[str, Any] = await conn.fetchval(
        "SELECT definition FROM surveys WHERE id = $1", survey_id
    )
    return definition


async def insert_submission(
    conn: Connection,
    *,
    invitation: Invitation,
    key_id: uuid.UUID,
    channel: Channel,
    week: dt.date,
    ciphertext: bytes,
    receipt_hash: bytes | None,
) -> bool:
    """Store a submission; for a single-use invitation, consume it in the same statement.
    False, and nothing stored, if the invitation was already used (or expired meanwhile): a
    concurrent submit of the same token waits on the row lock, then finds it used."""
    stored = await conn.fetchval(
        """
        WITH consumed AS (
            UPDATE invitations SET used_week = $7
             WHERE id = $1 AND kind = 'single' AND used_week IS NULL
               AND revoked_at IS NULL AND expires_at > now()
            RETURNING id
        )
        INSERT INTO submissions (organisation_id, program_id, survey_id, key_id, channel,
                                 open_link, received_week, ciphertext, receipt_hash)
        SELECT $2, $3, $4, $5, $6, $9, $7, $8, $10
         WHERE $9 OR EXISTS (SELECT 1 FROM consumed)
        RETURNING true
        """,
        invitation.id,
        invitation.organisation_id,
        invitation.program_id,
        invitation.survey_id,
        key_id,
        channel,
        week,
        ciphertext,
        invitation.kind == "open",
        receipt_hash,
    )
    return bool(stored)


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


@dataclass(frozen=True, slots=True)
class SealedStore:
    """What one attempt to store a browser-sealed submission found and did."""

    stored: bool
    expired: bool
    used: bool
    key_known: bool
    notes: tuple[dict[str, str], ...]

    def notes_in(self, language: str) -> list[str]:
        return notes_in(self.notes, language)


@dataclass(frozen=True, slots=True)
class SealedItem:
    token_hash: bytes
    key_id: uuid.UUID
    ciphertext: bytes
    receipt_hash: bytes


async def store_sealed_batch(
    conn: Connection, items: list[SealedItem], *, week: dt.date
) -> list[SealedStore | None]:
    """Store browser-sealed posts, as many as are given, in one statement and one commit:
    for each, find the invitation, check that the key is one of its organisation's, consume a
    single-use token, insert, and report; None where no invitation has the token. Nothing is
    stored for a post unless every check passes; within a batch, a single-use token is
    consumed by its first post only, and the others find it used."""
    rows = await conn.fetch(
        """
        WITH input AS (
            SELECT * FROM unnest($1::bytea[], $2::uuid[], $3::bytea[], $4::bytea[])
                     WITH ORDINALITY AS t(token_hash, key_id, ciphertext, receipt_hash, ord)
        ),
        found AS (
            SELECT input.ord, input.key_id, input.ciphertext, input.receipt_hash,
                   i.id, i.kind, i.organisation_id, i.program_id, i.survey_id,
                   (i.revoked_at IS NOT NULL OR i.expires_at <= now()) AS expired,
                   (i.used_week IS NOT NULL) AS used,
                   EXISTS (SELECT 1 FROM collection_keys k
                            WHERE k.id = input.key_id AND k.organisation_id = i.organisation_id)
                       AS key_known,
                   row_number() OVER (PARTITION BY i.id ORDER BY input.ord) AS nth
              FROM input
              JOIN invitations i ON i.token_hash = input.token_hash
        ),
        consumed AS (
            UPDATE invitations SET used_week = $5
              FROM found f
             WHERE invitations.id = f.id AND f.nth = 1 AND f.kind = 'single' AND f.key_known
               AND invitations.used_week IS NULL AND invitations.revoked_at IS NULL
               AND invitations.expires_at > now()
            RETURNING invitations.id
        ),
        stored AS (
            INSERT INTO submissions (organisation_id, program_id, survey_id, key_id, channel,
                                     open_link, received_week, ciphertext, receipt_hash)
            SELECT f.organisation_id, f.program_id, f.survey_id, f.key_id, 'web',
                   f.kind = 'open', $5, f.ciphertext, f.receipt_hash
              FROM found f
             WHERE f.key_known
               AND ((f.kind = 'open' AND NOT f.expired)
                    OR (f.nth = 1 AND f.id IN (SELECT id FROM consumed)))
            RETURNING receipt_hash
        )
        SELECT f.ord,
               f.receipt_hash IN (SELECT receipt_hash FROM stored) AS stored,
               f.expired, (f.used OR (f.kind = 'single' AND f.nth > 1)) AS used,
               f.key_known, p.latest_notes AS notes
          FROM found f
          JOIN programs p ON p.id = f.program_id
        """,
        [item.token_hash for item in items],
        [item.key_id for item in items],
        [item.ciphertext for item in items],
        [item.receipt_hash for item in items],
        week,
    )
    results: list[SealedStore | None] = [None] * len(items)
    for row in rows:
        values = dict(row)
        ordinal = values.pop("ord")
        values["notes"] = tuple(values["notes"])
        results[ordinal - 1] = SealedStore(**values)
    return results
