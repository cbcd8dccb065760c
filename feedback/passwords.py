"""Staff passwords: argon2id strings from libsodium, hashed and checked off the event loop, in
the bounded ``PASSWORDS`` lane (past it, ``offload.Busy``). A core module, so that the staff
app reaches libsodium only through core modules."""

from __future__ import annotations

import nacl.exceptions
import nacl.pwhash

from feedback.offload import PASSWORDS, Lane

# argon2id at libsodium's INTERACTIVE limits: about 60 ms and 64 MiB here (RECIPES.md).
_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


def hash_password_sync(password: str) -> str:
    return nacl.pwhash.argon2id.str(
        password.encode(), opslimit=_OPSLIMIT, memlimit=_MEMLIMIT
    ).decode()


def verify_password_sync(password_hash: str, password: str) -> bool:
    try:
        return bool(nacl.pwhash.argon2id.verify(password_hash.encode(), password.encode()))
    except nacl.exceptions.InvalidkeyError:
        return False


async def hash_password(password: str) -> str:
    return await PASSWORDS.run(hash_password_sync, password)


async def verify_password(password_hash: str, password: str, *, lane: Lane = PASSWORDS) -> bool:
    return await lane.run(verify_password_sync, password_hash, password)
