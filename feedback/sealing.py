"""The public half of the collection key: sealing only.

A sealed box is libsodium's ``crypto_box_seal``: an ephemeral X25519 key pair, a nonce derived
from both public keys, XSalsa20-Poly1305. Its output is 48 bytes longer than the message.
Opening needs the private key, which only ``feedback.aggregate.keys`` ever holds.
"""

from __future__ import annotations

import base64
import binascii

from nacl.public import PublicKey, SealedBox

from feedback.errors import FeedbackError

SEAL_OVERHEAD = 48  # 32-byte ephemeral public key + 16-byte Poly1305 tag
PUBLIC_KEY_BYTES = 32


class InvalidPublicKey(FeedbackError):
    pass


def load_public_key(raw: bytes) -> PublicKey:
    if len(raw) != PUBLIC_KEY_BYTES:
        raise InvalidPublicKey(f"a public key is {PUBLIC_KEY_BYTES} bytes; got {len(raw)}")
    return PublicKey(raw)


def public_key_from_base64(text: str) -> PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise InvalidPublicKey("the public key is not valid base64") from None
    return load_public_key(raw)


def seal(recipient: PublicKey, plaintext: bytes) -> bytes:
    """Seal ``plaintext`` so that only the holder of ``recipient``'s private key can open it."""
    return bytes(SealedBox(recipient).encrypt(plaintext))
