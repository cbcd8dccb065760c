"""Wrapping private keys under a passphrase: argon2id derives a key, SecretBox seals with it.

Used by ``aggregate.keys`` (collection keys) and ``aggregate.signing`` (signing keys); the
wrapped form is what the database stores. ODK Central's managed encryption works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from feedback.errors import FeedbackError

KDF = "argon2id13"


@dataclass(frozen=True, slots=True)
class KdfCost:
    opslimit: int
    memlimit: int


# libsodium's SENSITIVE limits: about 3 s and 1 GiB here. Unwrapping is rare (a release run,
# a key export), and an offline guesser with a copy of the database pays this per guess.
SENSITIVE = KdfCost(
    nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
)
# For tests only (FEEDBACK_INSECURE_TEST_KDF, refused with an https:// public URL).
INSECURE_TEST = KdfCost(
    nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
)


def kdf_cost(*, insecure_test: bool) -> KdfCost:
    return INSECURE_TEST if insecure_test else SENSITIVE


class WrongPassphrase(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Wrapped:
    ciphertext: bytes  # SecretBox: 24-byte nonce + 16-byte MAC + the secret
    salt: bytes
    opslimit: int
    memlimit: int
    algorithm: str = KDF


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


def wrap(secret: bytes, passphrase: str, *, cost: KdfCost = SENSITIVE) -> Wrapped:
    """``secret`` sealed under a key argon2id derives from ``passphrase`` (which the caller
    has checked: see ``passphrases.check_key_passphrase``)."""
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    key = _derive(passphrase, salt, cost.opslimit, cost.memlimit)
    ciphertext = bytes(nacl.secret.SecretBox(key).encrypt(secret))
    return Wrapped(ciphertext, salt, cost.opslimit, cost.memlimit)


def unwrap(wrapped: Wrapped, passphrase: str) -> bytes:
    if wrapped.algorithm != KDF:
        raise FeedbackError(f"unknown key-wrapping algorithm {wrapped.algorithm!r}")
    key = _derive(passphrase, wrapped.salt, wrapped.opslimit, wrapped.memlimit)
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(wrapped.ciphertext))
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase("wrong passphrase: nothing was changed; try again") from None
