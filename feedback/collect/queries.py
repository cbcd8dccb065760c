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
    token_hash: bytes  # what it was found by, and what spends it
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


# The survivor app's role has no privilege on invitations or sms_sessions: it reads and spends
# tokens, and keeps SMS conversations, through functions that run as the schema's owner and
# answer about the one token or number they are given (migrations/0028), so that it reads no
# count of either table.


async def select_invitation(
    conn: Connection, *, token_hash: bytes, medium: Literal["link", "sms"] = "link"
) -> Invitation | None:
    """The invitation, if it can take answers now, with its survey and program settings, the
    organisation's current key and the program's latest notes: everything a survey page or
    post needs, in one round trip. A spent single-use token has no row at all: used, expired,
    revoked and unknown tokens all find nothing, and every page or reply says the same."""
    row = await conn.fetchrow("SELECT * FROM invitation_by_token($1, $2)", token_hash, medium)
    if row is None:
        return None
    values = dict(row)
    values["languages"] = tuple(values["languages"])
    values["notes"] = tuple(values["notes"])
    return Invitation(token_hash=token_hash, **values)


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
    statement (``store_submission``). False, and nothing stored, if it was spent (or revoked,
    or expired) meanwhile: a concurrent submit of the same token waits on the row lock, then
    finds it gone. The week of receipt is the database's (see ``current_iso_week``). The row
    does not say which key sealed it (the week's keys are tried): a rotation then splits no
    week's answers."""
    stored = await conn.fetchval(
        "SELECT store_submission($1, $2, $3, $4)",
        invitation.token_hash,
        channel,
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
    single-use token is spent by its first post only, and the others find nothing (the
    statement is ``store_sealed_batch`` in migrations/0028)."""
    rows = await conn.fetch(
        "SELECT * FROM store_sealed_batch($1, $2, $3, $4)",
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
