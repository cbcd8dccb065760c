"""Funders and their private links: an admin adds a funder and the programs it may see; the
link's token (128 random bits) is shown once and only its hash kept; a revoked link opens
nothing. A funder sees a publication when it may see every program the publication shows."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.minisign import PublicKey
from feedback.tokens import is_token, make_token

EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


class FunderError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Funder:
    id: uuid.UUID
    organisation_id: uuid.UUID
    name: str
    email: str | None
    programs: tuple[str, ...]  # the programs' names
    created_on: dt.date
    revoked_on: dt.date | None


def hash_link(token: str) -> bytes:
    return hashlib.sha256(b"feedback.funder-link.v1\0" + token.encode()).digest()


async def add_funder(
    conn: Connection,
    organisation_id: uuid.UUID,
    name: str,
    email: str | None,
    program_ids: Sequence[uuid.UUID],
) -> tuple[uuid.UUID, str]:
    """A new funder and its link token (shown once)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise FunderError("give the funder's name (at most 200 characters)")
    if email and not EMAIL.fullmatch(email):
        raise FunderError(f"{email!r} is not an email address")
    if not program_ids:
        raise FunderError("choose at least one program the funder may see")
    found = await conn.fetchval(
        "SELECT count(*) FROM programs WHERE organisation_id = $1 AND id = ANY($2::uuid[])",
        organisation_id,
        list(program_ids),
    )
    if found != len(set(program_ids)):
        raise FunderError("a chosen program is not one of this organisation's")
    token = make_token()
    async with conn.transaction():
        funder_id = await conn.fetchval(
            """
            INSERT INTO funders (organisation_id, name, email, link_token_hash)
            VALUES ($1, $2, $3, $4) RETURNING id
            """,
            organisation_id,
            name,
            email or None,
            hash_link(token),
        )
        await conn.executemany(
            "INSERT INTO funder_programs (organisation_id, funder_id, program_id) "
            "VALUES ($1, $2, $3)",
            [(organisation_id, funder_id, p) for p in set(program_ids)],
        )
    return funder_id, token


_SELECT = """
    SELECT f.id, f.organisation_id, f.name, f.email, f.created_on, f.revoked_on,
           coalesce(array_agg(p.name ORDER BY p.name) FILTER (WHERE p.id IS NOT NULL), '{}')
               AS programs
      FROM funders f
      LEFT JOIN funder_programs fp ON fp.funder_id = f.id
      LEFT JOIN programs p ON p.id = fp.program_id
"""


def _funder(row: object) -> Funder:
    r = dict(row)  # type: ignore[call-overload]
    return Funder(
        r["id"],
        r["organisation_id"],
        r["name"],
        r["email"],
        tuple(r["programs"]),
        r["created_on"],
        r["revoked_on"],
    )


async def funders_of(conn: Connection, organisation_id: uuid.UUID) -> list[Funder]:
    rows = await conn.fetch(
        _SELECT + " WHERE f.organisation_id = $1 GROUP BY f.id ORDER BY f.name, f.created_on",
        organisation_id,
    )
    return [_funder(row) for row in rows]


async def funder_by_link(conn: Connection, token: str) -> Funder | None:
    """The funder whose link this is (revoked or not), or None."""
    if not is_token(token):
        return None
    row = await conn.fetchrow(
        _SELECT + " WHERE f.link_token_hash = $1 GROUP BY f.id", hash_link(token)
    )
    return None if row is None else _funder(row)


async def revoke_funder(conn: Connection, organisation_id: uuid.UUID, funder_id: uuid.UUID) -> bool:
    """Revoke a funder's link; False if there is no such funder in the organisation."""
    revoked = await conn.fetchval(
        """
        UPDATE funders SET revoked_on = coalesce(revoked_on, utc_today())
         WHERE organisation_id = $1 AND id = $2 RETURNING id
        """,
        organisation_id,
        funder_id,
    )
    return revoked is not None


@dataclass(frozen=True, slots=True)
class Listed:
    id: uuid.UUID
    series: str
    sequence: int
    period: str
    issued: dt.date
    next_due: dt.date | None
    corrects: int | None
    why: str | None
    key: PublicKey  # the key that signed it
    key_retired: bool


_LISTED = """
    SELECT p.id, p.series, p.sequence, p.period, p.issued, p.next_due, p.corrects, p.why,
           k.public_key, k.retired_week IS NOT NULL AS key_retired
      FROM publications p JOIN signing_keys k ON k.id = p.signing_key_id
"""


def _listed(row: object) -> Listed:
    r = dict(row)  # type: ignore[call-overload]
    key = PublicKey.of(r.pop("public_key"))
    return Listed(**r, key=key)


async def publications_of(conn: Connection, organisation_id: uuid.UUID) -> list[Listed]:
    """Every publication of the organisation, by series, newest first."""
    rows = await conn.fetch(
        _LISTED + " WHERE p.organisation_id = $1 ORDER BY series, sequence DESC", organisation_id
    )
    return [_listed(row) for row in rows]


async def visible_publications(conn: Connection, funder: Funder) -> list[Listed]:
    """The publications a funder may see, newest first: every program they show is the
    funder's."""
    rows = await conn.fetch(
        _LISTED
        + """
         WHERE p.organisation_id = $1
           AND p.programs <@ (SELECT array_agg(program_id) FROM funder_programs
                               WHERE funder_id = $2)
         ORDER BY series, sequence DESC
        """,
        funder.organisation_id,
        funder.id,
    )
    return [_listed(row) for row in rows]
