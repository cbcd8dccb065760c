"""minisign's file formats (https://jedisct1.github.io/minisign/), so that a funder can check a
publication with the reference `minisign -V` as well as with ours.

A public key is ``Ed`` + an 8-byte key id + the 32-byte Ed25519 key, in base64 under an
untrusted comment line. A signature is ``ED`` + the key id + Ed25519 over the BLAKE2b-512 hash
of the file (minisign's default, pre-hashed: files of any size), then a trusted comment, and a
global signature over the first signature followed by the trusted comment's text, so that the
comment (which names the series, its sequence and the previous manifest's hash) cannot be
changed without the key. Legacy ``Ed`` signatures (over the file itself) are checked too.

Only Ed25519 from libsodium (PyNaCl) is used; the signing key is given by the caller (the
worker's key ceremony, feedback.aggregate.signing), never built here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from feedback.errors import FeedbackError

if TYPE_CHECKING:
    from nacl.signing import SigningKey

KEY_ALGORITHM = b"Ed"
PREHASHED = b"ED"  # Ed25519 over BLAKE2b-512 of the file
LEGACY = b"Ed"  # Ed25519 over the file itself
UNTRUSTED = "untrusted comment: "
TRUSTED = "trusted comment: "


class BadSignature(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class PublicKey:
    key_id: bytes  # 8 bytes
    key: bytes  # 32 bytes, Ed25519

    @classmethod
    def of(cls, key: bytes) -> PublicKey:
        """An organisation's signing key in minisign's form; its id is derived from the key, so
        that every copy of it carries the same id."""
        if len(key) != 32:
            raise BadSignature("an Ed25519 public key is 32 bytes")
        return cls(hashlib.blake2b(key, digest_size=8).digest(), key)

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """A minisign public key: its file, or the base64 line alone."""
        lines = [line.strip() for line in text.strip().splitlines()]
        line = lines[-1] if lines else ""
        raw = _b64(line, "the public key")
        if len(raw) != 42 or raw[:2] != KEY_ALGORITHM:
            raise BadSignature("not a minisign Ed25519 public key")
        return cls(raw[2:10], raw[10:])

    def line(self) -> str:
        return base64.b64encode(KEY_ALGORITHM + self.key_id + self.key).decode()

    def file(self, comment: str) -> str:
        return f"{UNTRUSTED}{_one_line(comment)}\n{self.line()}\n"

    @property
    def hex_id(self) -> str:
        """The key id as `minisign` prints it (the little-endian number, in hex)."""
        return self.key_id[::-1].hex().upper()


def sign(
    message: bytes, signing_key: SigningKey, *, trusted_comment: str, untrusted_comment: str
) -> str:
    """The minisign signature file of ``message`` (pre-hashed)."""
    public = PublicKey.of(bytes(signing_key.verify_key))
    trusted = _one_line(trusted_comment)
    signature = signing_key.sign(_blake2b(message)).signature
    global_signature = signing_key.sign(signature + trusted.encode()).signature
    return (
        f"{UNTRUSTED}{_one_line(untrusted_comment)}\n"
        f"{base64.b64encode(PREHASHED + public.key_id + signature).decode()}\n"
        f"{TRUSTED}{trusted}\n"
        f"{base64.b64encode(global_signature).decode()}\n"
    )


def verify(message: bytes, signature_file: str, public_key: PublicKey) -> str:
    """Check ``signature_file`` over ``message`` with ``public_key``; the trusted comment, or
    BadSignature saying what does not hold."""
    lines = signature_file.splitlines()
    if len(lines) < 4 or not lines[0].startswith(UNTRUSTED) or not lines[2].startswith(TRUSTED):
        raise BadSignature(
            "not a minisign signature file (four lines: comment, signature, "
            "trusted comment, global signature)"
        )
    raw = _b64(lines[1], "the signature")
    if len(raw) != 74 or raw[:2] not in (PREHASHED, LEGACY):
        raise BadSignature("not a minisign Ed25519 signature")
    algorithm, key_id, signature = raw[:2], raw[2:10], raw[10:]
    if key_id != public_key.key_id:
        raise BadSignature(
            f"signed with key {key_id[::-1].hex().upper()}, not with {public_key.hex_id}"
        )
    key = VerifyKey(public_key.key)
    signed = _blake2b(message) if algorithm == PREHASHED else message
    try:
        key.verify(signed, signature)
    except BadSignatureError:
        raise BadSignature("the signature does not match the file: it was changed") from None
    trusted = lines[2][len(TRUSTED) :]
    try:
        key.verify(signature + trusted.encode(), _b64(lines[3], "the global signature"))
    except BadSignatureError:
        raise BadSignature("the trusted comment does not match its signature") from None
    return trusted


def _blake2b(message: bytes) -> bytes:
    return hashlib.blake2b(message, digest_size=64).digest()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature(f"{what} is not base64") from None


def _one_line(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise BadSignature("a comment is one line")
    return text
