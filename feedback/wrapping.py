"""Wrapping private keys under a passphrase: argon2id derives a key, SecretBox seals with it.

Used by ``aggregate.keys`` (collection keys) and ``publish.signing`` (signing keys); the
wrapped form is what the database stores. ODK Central's managed encryption works the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils
from zxcvbn import zxcvbn

from feedback.errors import FeedbackError

KDF = "argon2id13"
# libsodium's MODERATE limits: about 0.4 s and 256 MiB here. Unwrapping is rare (a release run,
# a key export), and each doubling of cost doubles an offline guesser's work.
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
MIN_PASSPHRASE = 12
# Words an attacker tries first for this service, and example passphrases so famous that
# they are in every cracking list whatever their dictionary score (compared without spaces).
FAMOUS = ["feedback", "survivor", "organisation", "organization", "passphrase"]
FAMOUS_PHRASES = frozenset(
    (
        "correcthorsebatterystaple",
        "thequickbrownfoxjumpsoverthelazydog",
        "tobeornottobe",
        "maytheforcebewithyou",
        "iwanttobelieve",
    )
)
MIN_SCORE = 3  # zxcvbn's scale: 3 is "safely unguessable", about 10^8 guesses or more


class WeakPassphrase(FeedbackError):
    pass


class WrongPassphrase(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Wrapped:
    ciphertext: bytes  # SecretBox: 24-byte nonce + 16-byte MAC + the secret
    salt: bytes
    opslimit: int
    memlimit: int
    algorithm: str = KDF


def check_passphrase(passphrase: str) -> None:
    """Refuse a passphrase an attacker with the database could guess; say why."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise WeakPassphrase(
            f"the passphrase is {len(passphrase)} characters; use at least {MIN_PASSPHRASE} "
            "(four or more random words work well)"
        )
    # Score the phrase as typed and with its separators removed: zxcvbn treats spaces as
    # unguessable gaps, which would let a famous phrase through.
    folded = re.sub(r"[\s\-_.,!']+", "", passphrase).lower()
    if folded in FAMOUS_PHRASES:
        raise WeakPassphrase("that passphrase is a famous example; choose one of your own")
    estimate = min(
        (zxcvbn(candidate[:100], user_inputs=FAMOUS) for candidate in {passphrase, folded}),
        key=lambda e: int(e["score"]),
    )
    if estimate["score"] < MIN_SCORE:
        warning = estimate["feedback"]["warning"] or "it would be easy to guess"
        raise WeakPassphrase(
            f"that passphrase is too easy to guess ({warning.rstrip('.').lower()}); "
            "four or more random words work well"
        )


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return bytes(
        nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode(),
            salt,
            opslimit=opslimit,
            memlimit=memlimit,
        )
    )


def wrap(
    secret: bytes, passphrase: str, *, opslimit: int = OPSLIMIT, memlimit: int = MEMLIMIT
) -> Wrapped:
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    key = _derive(passphrase, salt, opslimit, memlimit)
    ciphertext = bytes(nacl.secret.SecretBox(key).encrypt(secret))
    return Wrapped(ciphertext, salt, opslimit, memlimit)


def unwrap(wrapped: Wrapped, passphrase: str) -> bytes:
    if wrapped.algorithm != KDF:
        raise FeedbackError(f"unknown key-wrapping algorithm {wrapped.algorithm!r}")
    key = _derive(passphrase, wrapped.salt, wrapped.opslimit, wrapped.memlimit)
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(wrapped.ciphertext))
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase("wrong passphrase: nothing was changed; try again") from None
