"""Collection keys: the only module that builds an X25519 private key.

A key pair is made here, its private half wrapped under the admin's passphrase before it is
stored; unlocking happens here too, in the worker's memory only. An exported key file lets an
organisation aggregate offline, away from the server.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nacl.bindings import crypto_box_seal_open
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey

from feedback import keyrows
from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.passphrases import check_key_passphrase
from feedback.wrapping import SENSITIVE, KdfCost, WrongPassphrase, unwrap, wrap

KEY_FILE_FORMAT = "feedback.collection-key.v1"


class KeyFileError(FeedbackError):
    pass


class CannotOpen(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class UnlockedKey:
    id: uuid.UUID
    private_key: PrivateKey
    # The raw halves, for ``open`` (called once per submission); never printed.
    _public: bytes = field(init=False, repr=False, compare=False)
    _secret: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_public", bytes(self.private_key.public_key))
        object.__setattr__(self, "_secret", bytes(self.private_key))

    @classmethod
    def from_bytes(cls, key_id: uuid.UUID, secret: bytes) -> UnlockedKey:
        """Rebuild a key handed to a worker process (as bytes, in memory only)."""
        return cls(key_id, PrivateKey(secret))

    def to_bytes(self) -> bytes:
        return bytes(self.private_key)

    def open(self, ciphertext: bytes) -> bytes:
        try:
            return crypto_box_seal_open(ciphertext, self._public, self._secret)
        except CryptoError:
            raise CannotOpen(f"the sealed box does not open with key {self.id}") from None


@dataclass(frozen=True, slots=True)
class Active:
    """The weeks a collection key took answers: from the week it was made to the week it was
    retired, both included (a rotation's week has two keys)."""

    key_id: uuid.UUID
    first: dt.date
    last: dt.date | None  # None: the current key

    def covers(self, first_week: dt.date, end_week: dt.date) -> bool:
        """Whether the key took answers in some week from ``first_week`` up to ``end_week``
        (excluded)."""
        return self.first < end_week and (self.last is None or self.last >= first_week)


async def key_weeks(conn: Connection, organisation_id: uuid.UUID) -> list[Active]:
    rows = await keyrows.select_keys(conn, "collection_keys", organisation_id=organisation_id)
    return [Active(row.id, row.created_week, row.retired_week) for row in rows]


class KeyRing:
    """The unlocked keys, each tried first on the weeks it took answers. A submission does
    not say which key sealed it (that would split a rotation's week into before and after),
    so each is opened with its week's keys, and only if none opens it, with the others."""

    def __init__(self, keys: Sequence[UnlockedKey], weeks: Sequence[Active]) -> None:
        self.keys = tuple(keys)
        self._weeks = {active.key_id: active for active in weeks}
        self._tried: dict[dt.date, tuple[UnlockedKey, ...]] = {}

    def _order(self, week: dt.date) -> tuple[UnlockedKey, ...]:
        found = self._tried.get(week)
        if found is None:

            def current(key: UnlockedKey) -> bool:
                active = self._weeks.get(key.id)
                return active is not None and active.covers(week, week + dt.timedelta(days=7))

            found = tuple(sorted(self.keys, key=lambda key: not current(key)))
            self._tried[week] = found
        return found

    def open(self, week: dt.date, ciphertext: bytes) -> bytes:
        for key in self._order(week):
            try:
                return key.open(ciphertext)
            except CannotOpen:
                continue
        raise CannotOpen("the sealed box opens with none of the unlocked keys")


async def create_collection_key(
    conn: Connection,
    *,
    organisation_id: uuid.UUID,
    passphrase: str,
    retire_current: bool = False,
    cost: KdfCost = SENSITIVE,
) -> uuid.UUID:
    """Make a key pair, store the public half and the wrapped private half; return its id."""
    check_key_passphrase(passphrase)
    private_key = PrivateKey.generate()
    return await keyrows.insert_key(
        conn,
        "collection_keys",
        organisation_id=organisation_id,
        public_key=bytes(private_key.public_key),
        wrapped=wrap(bytes(private_key), passphrase, cost=cost),
        retire_current=retire_current,
    )


async def unlock(
    conn: Connection,
    *,
    organisation_id: uuid.UUID,
    passphrase: str,
    key_id: uuid.UUID | None = None,
) -> UnlockedKey:
    """Unwrap a collection key (the current one unless ``key_id`` is given)."""
    row = await keyrows.select_key(
        conn, "collection_keys", organisation_id=organisation_id, key_id=key_id
    )
    if row.wrapped is None:
        raise KeyFileError(
            f"key {row.id} is kept off the server: load it from its key file instead"
        )
    private_key = PrivateKey(unwrap(row.wrapped, passphrase))
    if bytes(private_key.public_key) != row.public_key:
        raise FeedbackError(
            f"key {row.id}: the unwrapped private key does not match its public key"
        )
    return UnlockedKey(row.id, private_key)


async def unlock_all(
    conn: Connection, organisation_id: uuid.UUID, passphrase: str
) -> dict[uuid.UUID, UnlockedKey]:
    """Every wrapped key of the organisation that the passphrase opens (retired ones too:
    old submissions are sealed to them)."""
    unlocked = {}
    for row in await keyrows.select_keys(conn, "collection_keys", organisation_id=organisation_id):
        if row.wrapped is None:
            continue
        try:
            key = await unlock(
                conn, organisation_id=organisation_id, passphrase=passphrase, key_id=row.id
            )
        except WrongPassphrase:
            continue
        unlocked[key.id] = key
    if not unlocked:
        raise WrongPassphrase("wrong passphrase: no key of this organisation opens with it")
    return unlocked


def write_key_file(key: UnlockedKey, path: Path) -> None:
    """The unwrapped key as a 0600 JSON file; refuses to overwrite anything."""
    document = {
        "format": KEY_FILE_FORMAT,
        "key_id": str(key.id),
        "private_key": base64.b64encode(bytes(key.private_key)).decode(),
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists: choose a new file name") from None
    except OSError as exc:
        raise KeyFileError(f"cannot write {path} ({exc.strerror})") from None
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)


async def load_key_file(conn: Connection, organisation_id: uuid.UUID, path: Path) -> UnlockedKey:
    """The key in an exported key file, once its public half is the one stored for that key
    id in this organisation: a wrong or foreign key file is refused before anything is read."""
    key = read_key_file(path)
    try:
        row = await keyrows.select_key(
            conn, "collection_keys", organisation_id=organisation_id, key_id=key.id
        )
    except keyrows.NoSuchKey:
        raise KeyFileError(
            f"{path} holds key {key.id}, which is not a collection key of this organisation"
        ) from None
    if row.public_key != bytes(key.private_key.public_key):
        raise KeyFileError(
            f"{path} holds a private key that does not match the public key stored for key "
            f"{key.id}: it is not that key (or the file was altered)"
        )
    return key


def read_key_file(path: Path) -> UnlockedKey:
    try:
        document = json.loads(path.read_text())
        if document.get("format") != KEY_FILE_FORMAT:
            raise ValueError
        return UnlockedKey(
            uuid.UUID(document["key_id"]),
            PrivateKey(base64.b64decode(document["private_key"], validate=True)),
        )
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path} ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise KeyFileError(f"{path} is not a feedback collection key file") from None
