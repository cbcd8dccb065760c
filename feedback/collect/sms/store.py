"""Every SQL statement of the SMS channel."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from feedback.db import Connection
from feedback.timeseals import TimeSeal


@dataclass(frozen=True, slots=True)
class Conversation:
    id: uuid.UUID
    phone_key: bytes  # the number's HMAC, which the conversation is found and kept by
    organisation_id: uuid.UUID
    program_id: uuid.UUID
    survey_id: uuid.UUID
    public_key: bytes  # the organisation's current key: each message seals to it
    language: str | None
    languages: tuple[str, ...]
    step: int
    retries: int
    fragments: tuple[bytes, ...]
    keep_partial: bool


async def load(conn: Connection, idle: TimeSeal, phone_key: bytes) -> Conversation | None:
    """The number's conversation, locked for this message (until the caller's transaction
    ends); an idle one is forgotten here (one that keeps partial answers is left for the
    worker to store)."""
    row = await conn.fetchrow("SELECT * FROM sms_conversation($1)", phone_key)
    if row is None:
        return None
    values = dict(row)
    if is_idle(idle, values.pop("idle_after")):
        if not values["kept"]:
            await forget(conn, phone_key)
        return None
    del values["kept"]
    values["languages"] = tuple(values["languages"])
    values["fragments"] = tuple(values["fragments"])
    return Conversation(phone_key=phone_key, **values)


def is_idle(idle: TimeSeal, idle_after: bytes) -> bool:
    """Whether a conversation has gone idle: its moment (sealed: a readable one would date
    the survivor's text; feedback.timeseals) has passed, or was sealed under another key."""
    until = idle.open(idle_after)
    return until is None or until <= dt.datetime.now(dt.UTC)


def idle_after(idle: TimeSeal, lasts: dt.timedelta) -> bytes:
    """The moment a conversation goes idle if no message comes before, sealed."""
    return idle.seal(dt.datetime.now(dt.UTC) + lasts)


async def start(
    conn: Connection,
    *,
    phone_key: bytes,
    invitation: Any,
    language: str | None,
    idle_after: bytes,
) -> uuid.UUID | None:
    """A new conversation for an SMS invitation (any earlier one of this number is replaced);
    None if its code can take answers no more."""
    session_id: uuid.UUID | None = await conn.fetchval(
        "SELECT sms_start($1, $2, $3, $4)",
        phone_key,
        invitation.token_hash,
        language,
        idle_after,
    )
    return session_id


async def save(
    conn: Connection,
    conversation: Conversation,
    *,
    language: str | None,
    step: int,
    retries: int,
    fragments: tuple[bytes, ...],
    partial: bytes | None,
    idle_after: bytes,
) -> None:
    await conn.execute(
        "SELECT sms_save($1, $2, $3, $4, $5, $6, $7, $8)",
        conversation.phone_key,
        conversation.id,
        language,
        step,
        retries,
        list(fragments),
        partial,
        idle_after,
    )


async def forget(conn: Connection, phone_key: bytes) -> None:
    await conn.execute("SELECT sms_forget($1)", phone_key)


async def submit(conn: Connection, conversation: Conversation, *, ciphertext: bytes) -> bool:
    """Store the submission, spend a single-use code (delete it) and end the conversation, in
    one statement of the caller's transaction, which writes nothing else. False, and nothing
    stored, if the code was spent, revoked or expired meanwhile."""
    stored = await conn.fetchval(
        "SELECT sms_submit($1, $2, $3)", conversation.phone_key, conversation.id, ciphertext
    )
    return bool(stored)


@dataclass(frozen=True, slots=True)
class Handled:
    """The gateway messages a number's ongoing conversation has handled, and its last reply."""

    keys: tuple[bytes, ...]
    last_reply: str | None

    def reply_to(self, message_key: bytes) -> tuple[bool, str | None]:
        """Whether the message was handled (a retried or replayed webhook), and what to answer
        it with: the last message gets its reply again; an earlier one, nothing."""
        if message_key not in self.keys:
            return False, None
        return True, self.last_reply if message_key == self.keys[-1] else None


async def handled(conn: Connection, phone_key: bytes) -> Handled:
    row = await conn.fetchrow("SELECT * FROM sms_handled($1)", phone_key)
    return Handled(tuple(row["handled"]), row["last_reply"]) if row else Handled((), None)


# A conversation keeps this many of its message keys (the per-number limit allows about 30
# messages in ten minutes; a conversation is a few dozen at most).
HANDLED_KEPT = 100


async def remember_reply(
    conn: Connection, phone_key: bytes, message_key: bytes, reply: str | None
) -> bool:
    """Keep the message's key, and its reply as the last one, on the conversation's own row
    (which goes when the conversation ends), for a retry of the same webhook; False when the
    message ended the conversation (STOP), so there is no row to keep them on."""
    kept = await conn.fetchval(
        "SELECT sms_remember_reply($1, $2, $3, $4)", phone_key, message_key, reply, HANDLED_KEPT
    )
    return bool(kept)


async def latest_note(
    conn: Connection, *, program_id: uuid.UUID | None, to_number: str
) -> list[dict[str, str]]:
    """The newest "you said, we did" notes of the conversation's program, else of the
    organisation that owns the number texted."""
    notes: list[dict[str, str]] | None = await conn.fetchval(
        """
        SELECT p.latest_notes FROM programs p
         WHERE ($1::uuid IS NOT NULL AND p.id = $1)
            OR ($1::uuid IS NULL AND p.organisation_id =
                (SELECT id FROM organisations WHERE sms_number = $2))
         ORDER BY jsonb_array_length(p.latest_notes) > 0 DESC
         LIMIT 1
        """,
        program_id,
        to_number,
    )
    return notes or []


async def help_text(
    conn: Connection, *, organisation_id: uuid.UUID | None, to_number: str
) -> tuple[str | None, str | None]:
    """The organisation's own help line and SMS name, if it set them."""
    row = await conn.fetchrow(
        "SELECT sms_help_text, sms_name FROM organisations "
        "WHERE id = $1 OR ($1::uuid IS NULL AND sms_number = $2) LIMIT 1",
        organisation_id,
        to_number,
    )
    return (None, None) if row is None else (row["sms_help_text"], row["sms_name"])
