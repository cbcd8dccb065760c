"""Invitation tokens, SMS start codes and receipt codes: made here, stored only as hashes.

Link tokens carry 128 random bits (base64url, 22 characters), so an unkeyed SHA-256 is enough:
it cannot be reversed by guessing. SMS start codes (ten digits, about 33 bits) and receipt
codes (60 bits) are short enough to type by hand, so their hashes are keyed with server
secrets that are not in the database: a stolen database does not let anyone test codes
offline, and alone cannot confirm that a code was ever issued.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_BYTES = 16
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")
RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
RECEIPT_GROUPS = 3
RECEIPT_GROUP_LENGTH = 4


SMS_CODE_DIGITS = 10


def make_sms_code() -> str:
    """An SMS start code: ten digits (about 33 bits), easy to type on any phone, and never a
    word that a carrier treats as a keyword."""
    return f"{secrets.randbelow(10**SMS_CODE_DIGITS):0{SMS_CODE_DIGITS}d}"


def is_sms_code(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) == SMS_CODE_DIGITS


def hash_sms_code(key: bytes, code: str) -> bytes:
    return hmac.new(key, b"feedback.sms-code.v1\0" + code.encode(), hashlib.sha256).digest()


def make_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(text: str) -> bool:
    return TOKEN_PATTERN.match(text) is not None


def hash_token(token: str) -> bytes:
    return hashlib.sha256(b"feedback.invitation.v1\0" + token.encode()).digest()


def make_receipt() -> str:
    """Twelve base32 characters (60 random bits) in groups of four, from one read of the
    system's random source."""
    bits = int.from_bytes(secrets.token_bytes(8)) >> 4  # 64 bits, keep 60
    characters = []
    for _ in range(RECEIPT_GROUPS * RECEIPT_GROUP_LENGTH):
        characters.append(RECEIPT_ALPHABET[bits & 31])
        bits >>= 5
    text = "".join(characters)
    return "-".join(
        text[i : i + RECEIPT_GROUP_LENGTH] for i in range(0, len(text), RECEIPT_GROUP_LENGTH)
    )


def normalise_receipt(text: str) -> str | None:
    """Accept what people type: any case, spaces or dashes, O for 0, I or L for 1."""
    cleaned = re.sub(r"[\s\-]", "", text.upper()).translate(str.maketrans("OIL", "011"))
    if len(cleaned) != RECEIPT_GROUPS * RECEIPT_GROUP_LENGTH:
        return None
    if any(c not in RECEIPT_ALPHABET for c in cleaned):
        return None
    return "-".join(
        cleaned[i : i + RECEIPT_GROUP_LENGTH] for i in range(0, len(cleaned), RECEIPT_GROUP_LENGTH)
    )


def hash_receipt(secret: bytes, receipt: str) -> bytes:
    return hmac.new(secret, b"feedback.receipt.v1\0" + receipt.encode(), hashlib.sha256).digest()
