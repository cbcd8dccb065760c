"""Every SQL statement of the SMS channel."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from feedback.collect.queries import LIVE_BATCH
from feedback.db import Connection
from feedback.timeseals import TimeSeal


@dataclass(frozen=True, slots=True)
class Conversation:
    id: uuid.UUID
    organisation_id: uuid.UUID
    program_id: uuid.UUID
    survey_id: uuid.UUID
    public_key: bytes  # the organisation's current key: each message seals to it
    invitation_id: uuid.UUID | None
    language: str | None
    languages: tuple[str, ...]
    step: int
    retries: int
    fragments: tuple[bytes, ...]
    keep_partial: bool


async def load(conn: Connection, idle: TimeSeal, phone_key: bytes) -> Conversation | None:
    """The number's conversation, locked for this message; an idle one is forgotten here
    (one that keeps partial answers is left for the worker to store)."""
    row = await conn.fetchrow(
        """
        SELECT s.id, s.organisation_id, s.program_id, s.survey_id, k.public_key,
               s.invitation_id, s.language, p.languages, s.step, s.retries, s.fragments,
               p.keep_partial_sms AS keep_partial, s.idle_after, s.partial IS NOT NULL AS kept
          FROM sms_sessions s
          JOIN programs p ON p.id = s.program_id
          JOIN collection_keys k ON k.organisation_id = s.organisation_id
                                AND k.retired_week IS NULL
         WHERE s.phone_hmac = $1
           FOR UPDATE OF s
        """,
        phone_key,
    )
    if row is None:
        return None
    values = dict(row)
    if is_idle(idle, values.pop("idle_after")):
        if not values["kept"]:
            await conn.execute("DELETE FROM sms_sessions WHERE id = $1", row["id"])
        return None
    del values["kept"]
    values["languages"] = tuple(values["languages"])
    values["fragments"] = tuple(values["fragments"])
    return Conversation(**values)


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
) -> uuid.UUID:
    """A new conversation for an invitation (any earlier one of this number is replaced)."""
    await conn.execute("DELETE FROM sms_sessions WHERE phone_hmac = $1", phone_key)
    session_id: uuid.UUID = await conn.fetchval(
        """
        INSERT INTO sms_sessions (phone_hmac, organisation_id, program_id, survey_id,
                                  invitation_id, language, idle_after)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING id
        """,
        phone_key,
        invitation.organisation_id,
        invitation.program_id,
        invitation.survey_id,
        invitation.id,
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
        """
        UPDATE sms_sessions
           SET language = $2, step = $3, retries = $4, fragments = $5, partial = $6,
               idle_after = $7
         WHERE id = $1
        """,
        conversation.id,
        language,
        step,
        retries,
        list(fragments),
        partial,
        idle_after,
    )


async def forget(conn: Connection, phone_key: bytes) -> None:
    await conn.execute("DELETE FROM sms_sessions WHERE phone_hmac = $1", phone_key)


async def submit(conn: Connection, conversation: Conversation, *, ciphertext: bytes) -> bool:
    """Store the submission, spend a single-use code (delete it) and end the conversation, in
    one transaction (the caller's), which writes nothing else. False, and nothing stored, if
    the code was spent, revoked or expired meanwhile."""
    stored = await conn.fetchval(
        f"""
        WITH invitation AS (
            SELECT i.id, b.kind FROM invitations i
              JOIN invitation_batches b ON b.id = i.batch_id
             WHERE i.id = $1 AND {LIVE_BATCH}
        ), spent AS (  -- a concurrent spend leaves nothing to delete: nothing is stored
            DELETE FROM invitations i
             USING invitation v
             WHERE i.id = v.id AND v.kind = 'single'
            RETURNING i.id
        )
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel, open_link,
                                 ciphertext)
        SELECT $2, $3, $4, 'sms', v.kind = 'open', $5
          FROM invitation v
         WHERE v.kind = 'open' OR EXISTS (SELECT 1 FROM spent)
        RETURNING true
        """,
        conversation.invitation_id,
        conversation.organisation_id,
        conversation.program_id,
        conversation.survey_id,
        ciphertext,
    )
    await conn.execute("DELETE FROM sms_sessions WHERE id = $1", conversation.id)
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
    row = await conn.fetchrow(
        "SELECT handled, last_reply FROM sms_sessions WHERE phone_hmac = $1", phone_key
    )
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
    status = await conn.execute(
        """
        UPDATE sms_sessions
           SET handled = (handled || $2::bytea)[greatest(1, cardinality(handled) + 2 - $4):],
               last_reply = $3
         WHERE phone_hmac = $1
        """,
        phone_key,
        message_key,
        reply,
        HANDLED_KEPT,
    )
    return bool(status == "UPDATE 1")


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
