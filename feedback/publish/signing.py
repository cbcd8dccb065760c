"""Signing keys for funder summaries: the only module that builds an Ed25519 signing key."""

from __future__ import annotations

import uuid

from nacl.signing import SigningKey

from feedback import keyrows
from feedback.db import Connection
from feedback.wrapping import check_passphrase, wrap


async def create_signing_key(
    conn: Connection, *, organisation_id: uuid.UUID, passphrase: str, retire_current: bool = False
) -> uuid.UUID:
    check_passphrase(passphrase)
    signing_key = SigningKey.generate()
    return await keyrows.insert_key(
        conn,
        "signing_keys",
        organisation_id=organisation_id,
        public_key=bytes(signing_key.verify_key),
        wrapped=wrap(bytes(signing_key), passphrase),
        retire_current=retire_current,
    )
