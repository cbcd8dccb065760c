"""Invitation batches: made by staff, printed as QR sheets, consumed by the survivor side."""

from __future__ import annotations

import datetime as dt
import functools
import html
import io
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import segno

from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.tokens import hash_sms_code, hash_token, make_sms_code, make_token

Medium = Literal["link", "sms"]
MAX_BATCH = 1000
DEFAULT_LIFETIME = dt.timedelta(days=90)


class InvitationError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Batch:
    id: uuid.UUID
    tokens: tuple[str, ...]
    expires_on: dt.date  # the last day (UTC) the batch takes answers


async def _current_survey(conn: Connection, program_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    row = await conn.fetchrow(
        """
        SELECT p.organisation_id, s.id AS survey_id
          FROM programs p
          JOIN surveys s ON s.organisation_id = p.organisation_id
         WHERE p.id = $1
         ORDER BY s.slug = 'rights-based' DESC, s.version DESC
         LIMIT 1
        """,
        program_id,
    )
    if row is None:
        raise InvitationError("that program has no survey yet")
    return row["organisation_id"], row["survey_id"]


def _hasher(medium: Medium, sms_code_key: bytes | None) -> Callable[[str], bytes]:
    if medium == "link":
        return hash_token
    if sms_code_key is None:
        raise InvitationError("SMS codes need the SMS code key (from the server's secrets)")
    return functools.partial(hash_sms_code, sms_code_key)


async def create_batch(
    conn: Connection,
    *,
    program_id: uuid.UUID,
    count: int,
    medium: Medium = "link",
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
    sms_code_key: bytes | None = None,
) -> Batch:
    """``count`` single-use tokens for a program; the tokens are returned once, never stored.
    The batch row keeps what staff may see (how many were issued, until when); the tokens'
    rows keep only their hashes, in random order, and go when spent."""
    if not 1 <= count <= MAX_BATCH:
        raise InvitationError(f"a batch holds 1 to {MAX_BATCH} invitations; asked for {count}")
    hashed = _hasher(medium, sms_code_key)
    organisation_id, survey_id = await _current_survey(conn, program_id)
    expires_on = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=lifetime.days)
    tokens = tuple(make_token() if medium == "link" else make_sms_code() for _ in range(count))
    async with conn.transaction():
        batch_id: uuid.UUID = await conn.fetchval(
            """
            INSERT INTO invitation_batches (organisation_id, program_id, survey_id, kind, medium,
                                            issued, expires_on)
            VALUES ($1, $2, $3, 'single', $4, $5, $6)
            RETURNING id
            """,
            organisation_id,
            program_id,
            survey_id,
            medium,
            count,
            expires_on,
        )
        await _insert_tokens(conn, batch_id, [hashed(t) for t in tokens])
    return Batch(batch_id, tokens, expires_on)


async def _insert_tokens(conn: Connection, batch_id: uuid.UUID, hashes: list[bytes]) -> None:
    """The tokens' hashes, in random order (rows keep no position in the printed sheet),
    through the one door the database opens for them: with their new batch, once."""
    secrets.SystemRandom().shuffle(hashes)
    await conn.execute("SELECT issue_invitations($1, $2)", batch_id, hashes)


async def create_open_link(
    conn: Connection,
    *,
    program_id: uuid.UUID,
    medium: Medium = "link",
    sms_code_key: bytes | None = None,
) -> str:
    """A new open (poster) link, or program-wide SMS code, for the program; earlier ones stay
    valid until revoked."""
    hashed = _hasher(medium, sms_code_key)
    organisation_id, survey_id = await _current_survey(conn, program_id)
    token = make_token() if medium == "link" else make_sms_code()
    async with conn.transaction():
        batch_id: uuid.UUID = await conn.fetchval(
            """
            INSERT INTO invitation_batches (organisation_id, program_id, survey_id, kind, medium,
                                            issued)
            VALUES ($1, $2, $3, 'open', $4, 1)
            RETURNING id
            """,
            organisation_id,
            program_id,
            survey_id,
            medium,
        )
        await _insert_tokens(conn, batch_id, [hashed(token)])
    return token


def survey_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/s/{token}"


def qr_sheet_svg(urls: Sequence[str], *, title: str, columns: int = 3) -> str:
    """A printable A4 sheet of QR codes, each with its link written beneath (for typing)."""
    cell_w, cell_h, margin = 62, 80, 12  # millimetres
    rows = (len(urls) + columns - 1) // columns
    height = max(297, margin * 2 + 12 + rows * cell_h)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="{height}mm" '
        f'viewBox="0 0 210 {height}" font-family="sans-serif">',
        f'<text x="{margin}" y="{margin + 4}" font-size="5">{html.escape(title)}</text>',
    ]
    for index, url in enumerate(urls):
        x = margin + (index % columns) * cell_w
        y = margin + 12 + (index // columns) * cell_h
        qr = segno.make(url, error="m")
        buffer = io.BytesIO()
        qr.save(buffer, kind="svg", xmldecl=False, svgns=False, nl=False, omitsize=True, border=2)
        size = 56
        scale = size / qr.symbol_size(border=2)[0]
        drawing = _inner(buffer.getvalue().decode())
        parts.append(f'<g transform="translate({x},{y}) scale({scale:.4f})">{drawing}</g>')
        parts.append(f'<text x="{x}" y="{y + size + 6}" font-size="2.6">{html.escape(url)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _inner(svg: str) -> str:
    """The drawing inside segno's <svg> element."""
    return svg[svg.index(">") + 1 : svg.rindex("</svg>")]
