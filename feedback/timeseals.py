"""Exact times that a copy of the database must not read.

Transaction ids are a clock: a row that pairs a readable time with its own xmin dates every
answer whose xmin is near it (../shared/PRIVACY.md, Metadata). The few times that must stay
exact to work (when a login may be tried again, when an SMS conversation goes idle) are
therefore sealed, in the row, under a key derived from a secret that is not in the database:
a copy of the database alone reads only ciphertext; the process that holds the secret reads
the time back. Everything else a row says about time is a day or a week.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

SEALED_BYTES = SecretBox.NONCE_SIZE + SecretBox.MACBYTES + 8
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class TimeSeal:
    """Seals moments under a key derived from ``secret`` for one ``purpose`` (so that the same
    secret serves several purposes without one's sealed times opening as another's)."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        key = hashlib.blake2b(
            purpose.encode(), key=secret[:64], digest_size=SecretBox.KEY_SIZE
        ).digest()
        self._box = SecretBox(key)

    def seal(self, moment: dt.datetime) -> bytes:
        microseconds = (moment - _EPOCH) // dt.timedelta(microseconds=1)
        return bytes(self._box.encrypt(struct.pack(">q", microseconds)))

    def open(self, sealed: bytes | None) -> dt.datetime | None:
        """The moment sealed, or None when there is none or it was sealed under another key
        (the caller decides which way that errs)."""
        if sealed is None or len(sealed) != SEALED_BYTES:
            return None
        try:
            (microseconds,) = struct.unpack(">q", self._box.decrypt(sealed))
        except CryptoError:
            return None
        return _EPOCH + dt.timedelta(microseconds=microseconds)
