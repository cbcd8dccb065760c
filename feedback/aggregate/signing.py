"""Signing keys for funder publications: the only module that builds an Ed25519 signing key.
Part of the worker's trust surface (the key ceremony): the staff app never holds one."""

from __future__ import annotations

import uuid

from nacl.signing import SigningKey

from feedback import keyrows
from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.passphrases import check_key_passphrase
from feedback.wrapping import SENSITIVE, KdfCost, unwrap, wrap


async def create_signing_key(
    conn: Connection,
    *,
    organisation_id: uuid.UUID,
    passphrase: str,
    retire_current: bool = False,
    cost: KdfCost = SENSITIVE,
) -> uuid.UUID:
    check_key_passphrase(passphrase)
    signing_key = SigningKey.generate()
    return await keyrows.insert_key(
        conn,
        "signing_keys",
        organisation_id=organisation_id,
        public_key=bytes(signing_key.verify_key),
        wrapped=wrap(bytes(signing_key), passphrase, cost=cost),
        retire_current=retire_current,
    )


async def unlock_signing_key(
    conn: Connection, organisation_id: uuid.UUID, passphrase: str
) -> tuple[uuid.UUID, SigningKey]:
    """The organisation's current signing key, unwrapped, with its id."""
    row = await keyrows.select_key(
        conn, "signing_keys", organisation_id=organisation_id, key_id=None
    )
    if row.wrapped is None:
        raise FeedbackError(f"signing key {row.id} is kept off the server: it cannot sign here")
    key = SigningKey(unwrap(row.wrapped, passphrase))
    if bytes(key.verify_key) != row.public_key:
        raise FeedbackError(
            f"signing key {row.id}: the unwrapped key does not match its public key"
        )
    return row.id, key
