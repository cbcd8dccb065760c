"""Every SQL statement of the survivor side."""

from __future__ import annotations

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
    notes: tuple[dict[str, str], ...]  # programs.latest_notes: newest first, language -> text

    def notes_in(self, language: str) -> list[str]:
        return notes_in(self.notes, language)


# A token can take answers when its batch is neither revoked nor expired (open links never
# expire). A spent single-use token has no row at all: used, expired, revoked and unknown
# tokens all find nothing, and every page or reply says the same about them.
LIVE_BATCH = "b.revoked_on IS NULL AND (b.expires_on IS NULL OR b.expires_on >= utc_today())"


async def select_invitation(
    conn: Connection, *, token_hash: bytes, medium: Literal["link", "sms"] = "link"
) -> Invitation | None:
    """The invitation, if it can take answers now, with its survey and program settings, the
    organisation's current key and the program's latest notes: everything a survey page or
    post needs, in one round trip."""
    row = await conn.fetchrow(
        f"""
        SELECT i.id, b.kind, b.organisation_id, b.program_id, b.survey_id,
               p.languages, o.comments_enabled,
               k.id AS key_id, k.public_key,
               p.latest_notes AS notes
          FROM invitations i
          JOIN invitation_batches b ON b.id = i.batch_id
          JOIN programs p ON p.id = b.program_id
          JOIN organisations o ON o.id = b.organisation_id
          LEFT JOIN collection_keys k
                 ON k.organisation_id = b.organisation_id AND k.retired_week IS NULL
         WHERE i.token_hash = $1 AND b.medium = $2 AND {LIVE_BATCH}
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
    channel: Channel,
    ciphertext: bytes,
    receipt_hash: bytes | None,
) -> bool:
    """Store a submission; for a single-use invitation, spend it (delete its row) in the same
    statement. False, and nothing stored, if it was spent (or revoked, or expired) meanwhile:
    a concurrent submit of the same token waits on the row lock, then finds it gone. The week
    of receipt is the database's (see ``current_iso_week``). The row does not say which key
    sealed it (the week's keys are tried): a rotation then splits no week's answers."""
    stored = await conn.fetchval(
        f"""
        WITH spent AS (
            DELETE FROM invitations i
             USING invitation_batches b
             WHERE i.id = $1 AND b.id = i.batch_id AND b.kind = 'single' AND {LIVE_BATCH}
            RETURNING i.id
        )
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel, open_link,
                                 ciphertext, receipt_hash)
        SELECT $2, $3, $4, $5, $6, $7, $8
         WHERE $6 OR EXISTS (SELECT 1 FROM spent)
        RETURNING true
        """,
        invitation.id,
        invitation.organisation_id,
        invitation.program_id,
        invitation.survey_id,
        channel,
        invitation.kind == "open",
        ciphertext,
        receipt_hash,
    )
    return bool(stored)


WithdrawOutcome = Literal["deleted", "counted", "unknown"]


async def withdraw_submission(conn: Connection, *, receipt_hash: bytes) -> WithdrawOutcome:
    """Delete the submission with this receipt unless a release has already counted it (see
    ``withdraw_submission`` in migrations/0013: the survivor app may not delete or read rows
    itself). Raises ``asyncpg.LockNotAvailableError`` when the row stays locked (a long mix)."""
    outcome: WithdrawOutcome = await conn.fetchval("SELECT withdraw_submission($1)", receipt_hash)
    return outcome


@dataclass(frozen=True, slots=True)
class SealedStore:
    """What one attempt to store a browser-sealed submission found and did."""

    stored: bool
    key_known: bool
    open_link: bool
    notes: tuple[dict[str, str], ...]

    def notes_in(self, language: str) -> list[str]:
        return notes_in(self.notes, language)


@dataclass(frozen=True, slots=True)
class SealedItem:
    token_hash: bytes
    key_id: uuid.UUID
    ciphertext: bytes
    receipt_hash: bytes


async def store_sealed_batch(conn: Connection, items: list[SealedItem]) -> list[SealedStore | None]:
    """Store browser-sealed posts, as many as are given, in one statement and one commit:
    for each, find a token that can take answers, check that the key is one of its
    organisation's, spend a single-use token, insert, and report; None where no token can
    take answers. Nothing is stored for a post unless every check passes; within a batch, a
    single-use token is spent by its first post only, and the others find nothing."""
    rows = await conn.fetch(
        f"""
        WITH input AS (
            SELECT * FROM unnest($1::bytea[], $2::uuid[], $3::bytea[], $4::bytea[])
                     WITH ORDINALITY AS t(token_hash, key_id, ciphertext, receipt_hash, ord)
        ),
        found AS (
            SELECT input.ord, input.key_id, input.ciphertext, input.receipt_hash,
                   i.id, b.kind, b.organisation_id, b.program_id, b.survey_id,
                   -- the organisation's current key only: after a rotation, a page loaded
                   -- before it is refused and loads again with the new key
                   EXISTS (SELECT 1 FROM collection_keys k
                            WHERE k.id = input.key_id AND k.organisation_id = b.organisation_id
                              AND k.retired_week IS NULL) AS key_known,
                   row_number() OVER (PARTITION BY i.id ORDER BY input.ord) AS nth
              FROM input
              JOIN invitations i ON i.token_hash = input.token_hash
              JOIN invitation_batches b ON b.id = i.batch_id AND b.medium = 'link'
             WHERE {LIVE_BATCH}
        ),
        spent AS (
            DELETE FROM invitations
             USING found f
             WHERE invitations.id = f.id AND f.nth = 1 AND f.kind = 'single' AND f.key_known
            RETURNING invitations.id
        ),
        storable AS (
            SELECT * FROM found f
             WHERE f.key_known
               AND (f.kind = 'open' OR (f.nth = 1 AND f.id IN (SELECT id FROM spent)))
        ),
        stored AS (  -- returns nothing: the survivor app's role may not read submissions
            INSERT INTO submissions (organisation_id, program_id, survey_id, channel,
                                     open_link, ciphertext, receipt_hash)
            SELECT organisation_id, program_id, survey_id, 'web', kind = 'open',
                   ciphertext, receipt_hash
              FROM storable
        )
        SELECT f.ord,
               f.ord IN (SELECT ord FROM storable) AS stored,
               f.key_known, f.kind = 'open' AS open_link, p.latest_notes AS notes
          FROM found f
          JOIN programs p ON p.id = f.program_id
        """,
        [item.token_hash for item in items],
        [item.key_id for item in items],
        [item.ciphertext for item in items],
        [item.receipt_hash for item in items],
    )
    results: list[SealedStore | None] = [None] * len(items)
    for row in rows:
        values = dict(row)
        ordinal = values.pop("ord")
        values["notes"] = tuple(values["notes"])
        results[ordinal - 1] = SealedStore(**values)
    return results
