"""Rows that many tests need, inserted with plain SQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PrivateKey

from feedback.db import Connection
from feedback.surveys import FIRST_VERSION, load_definition


@dataclass(frozen=True)
class Tenant:
    organisation_id: uuid.UUID
    program_id: uuid.UUID
    survey_id: uuid.UUID
    key_id: uuid.UUID


async def tenant(conn: Connection, slug: str = "org", *, survey: Path = FIRST_VERSION) -> Tenant:
    organisation_id = await conn.fetchval(
        "INSERT INTO organisations (slug, name) VALUES ($1, $1) RETURNING id", slug
    )
    program_id = await conn.fetchval(
        "INSERT INTO programs (organisation_id, slug, name) VALUES ($1, 'shelter', 'Shelter') "
        "RETURNING id",
        organisation_id,
    )
    definition = load_definition(survey)  # by default version 1, with the wider bank
    survey_id = await conn.fetchval(
        "INSERT INTO surveys (organisation_id, slug, version, definition) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        organisation_id,
        definition["slug"],
        definition["version"],
        definition,
    )
    key_id = await conn.fetchval(
        "INSERT INTO collection_keys (organisation_id, public_key) VALUES ($1, $2) RETURNING id",
        organisation_id,
        secrets.token_bytes(32),
    )
    return Tenant(organisation_id, program_id, survey_id, key_id)


async def invitation(
    conn: Connection,
    t: Tenant,
    *,
    expires_on: dt.date | None = None,
    revoked_on: dt.date | None = None,
) -> uuid.UUID:
    """A single-use link in a batch of its own."""
    expires = expires_on or dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
    batch_id = await conn.fetchval(
        """
        INSERT INTO invitation_batches (organisation_id, program_id, survey_id, kind, medium,
                                        issued, expires_on, revoked_on)
        VALUES ($1, $2, $3, 'single', 'link', 1, $4, $5)
        RETURNING id
        """,
        t.organisation_id,
        t.program_id,
        t.survey_id,
        expires,
        revoked_on,
    )
    invitation_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO invitations (batch_id, token_hash) VALUES ($1, $2) RETURNING id",
        batch_id,
        hashlib.sha256(secrets.token_bytes(16)).digest(),
    )
    return invitation_id


async def open_link(conn: Connection, t: Tenant) -> uuid.UUID:
    """An open (poster) link: a batch of one that never expires."""
    batch_id = await conn.fetchval(
        """
        INSERT INTO invitation_batches (organisation_id, program_id, survey_id, kind, medium,
                                        issued)
        VALUES ($1, $2, $3, 'open', 'link', 1)
        RETURNING id
        """,
        t.organisation_id,
        t.program_id,
        t.survey_id,
    )
    invitation_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO invitations (batch_id, token_hash) VALUES ($1, $2) RETURNING id",
        batch_id,
        hashlib.sha256(secrets.token_bytes(16)).digest(),
    )
    return invitation_id


@dataclass(frozen=True)
class KeyedTenant:
    tenant: Tenant
    private_key: PrivateKey


async def keyed_tenant(
    conn: Connection, slug: str = "org", *, comments: bool = True, survey: Path = FIRST_VERSION
) -> KeyedTenant:
    """A tenant whose current collection key is a real key pair (tests may hold the private
    half; the package never builds one outside aggregate/keys.py)."""
    t = await tenant(conn, slug, survey=survey)
    private_key = PrivateKey.generate()
    await conn.execute(
        "UPDATE collection_keys SET retired_week = current_iso_week() WHERE id = $1", t.key_id
    )
    key_id = await conn.fetchval(
        "INSERT INTO collection_keys (organisation_id, public_key) VALUES ($1, $2) RETURNING id",
        t.organisation_id,
        bytes(private_key.public_key),
    )
    await conn.execute(
        "UPDATE organisations SET comments_enabled = $2 WHERE id = $1", t.organisation_id, comments
    )
    return KeyedTenant(Tenant(t.organisation_id, t.program_id, t.survey_id, key_id), private_key)


async def submission(
    conn: Connection,
    t: Tenant,
    *,
    ciphertext: bytes,
    week: dt.date,
    included_in_release: bool = False,
) -> None:
    """A sealed submission row, as the survivor side stores one (it does not say which key
    sealed it)."""
    await conn.execute(
        """
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel,
                                 received_week, ciphertext, included_in_release)
        VALUES ($1, $2, $3, 'web', $4, $5, $6)
        """,
        t.organisation_id,
        t.program_id,
        t.survey_id,
        week,
        ciphertext,
        included_in_release,
    )
