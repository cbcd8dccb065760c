"""Rows of ``collection_keys`` and ``signing_keys``: the public halves and the wrapped private
halves, exactly as stored. Building a private key from them is for ``aggregate.keys`` and
``aggregate.signing`` only."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Literal

from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.wrapping import Wrapped

KeyTable = Literal["collection_keys", "signing_keys"]


class NoSuchKey(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: uuid.UUID
    organisation_id: uuid.UUID
    public_key: bytes
    wrapped: Wrapped | None
    created_week: dt.date  # the Monday of the week it was made (nothing finer is kept)
    retired_week: dt.date | None


_COLUMNS = """
    id, organisation_id, public_key, wrapped_private_key, kdf_algorithm, kdf_salt,
    kdf_opslimit, kdf_memlimit, created_week, retired_week
"""


def _row(record: object) -> KeyRow:
    r = dict(record)  # type: ignore[call-overload]
    wrapped = None
    if r["wrapped_private_key"] is not None:
        wrapped = Wrapped(
            r["wrapped_private_key"],
            r["kdf_salt"],
            r["kdf_opslimit"],
            r["kdf_memlimit"],
            r["kdf_algorithm"],
        )
    return KeyRow(
        r["id"],
        r["organisation_id"],
        r["public_key"],
        wrapped,
        r["created_week"],
        r["retired_week"],
    )


async def select_keys(
    conn: Connection, table: KeyTable, *, organisation_id: uuid.UUID
) -> list[KeyRow]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM {table} WHERE organisation_id = $1 "
        "ORDER BY created_week, retired_week NULLS LAST",
        organisation_id,
    )
    return [_row(r) for r in rows]


async def select_key(
    conn: Connection, table: KeyTable, *, organisation_id: uuid.UUID, key_id: uuid.UUID | None
) -> KeyRow:
    """The key ``key_id`` of the organisation, or its current key when ``key_id`` is None."""
    if key_id is None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM {table} WHERE organisation_id = $1 AND retired_week IS NULL",
            organisation_id,
        )
    else:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM {table} WHERE organisation_id = $1 AND id = $2",
            organisation_id,
            key_id,
        )
    if row is None:
        what = "no current key" if key_id is None else f"no key {key_id}"
        raise NoSuchKey(f"the organisation has {what} in {table}: run `feedback keys create` first")
    return _row(row)


async def insert_key(
    conn: Connection,
    table: KeyTable,
    *,
    organisation_id: uuid.UUID,
    public_key: bytes,
    wrapped: Wrapped | None,
    retire_current: bool,
) -> uuid.UUID:
    """Store a new current key; with ``retire_current``, retire the old one in the same step."""
    async with conn.transaction():
        if retire_current:
            await conn.execute(
                f"UPDATE {table} SET retired_week = current_iso_week() "
                "WHERE organisation_id = $1 AND retired_week IS NULL",
                organisation_id,
            )
        key_id: uuid.UUID = await conn.fetchval(
            f"""
            INSERT INTO {table} (organisation_id, public_key, wrapped_private_key, kdf_algorithm,
                                 kdf_salt, kdf_opslimit, kdf_memlimit)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING id
            """,
            organisation_id,
            public_key,
            wrapped and wrapped.ciphertext,
            wrapped and wrapped.algorithm,
            wrapped and wrapped.salt,
            wrapped and wrapped.opslimit,
            wrapped and wrapped.memlimit,
        )
        await conn.execute(
            "INSERT INTO audit_log (organisation_id, action, subject, details) "
            "VALUES ($1, $2, $3, $4)",
            organisation_id,
            "key.rotate" if retire_current else "key.create",
            table,
            {"key_id": str(key_id), "wrapped": wrapped is not None},
        )
    return key_id
