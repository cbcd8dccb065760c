"""Phone numbers, which are never stored: a conversation is keyed by an HMAC of the number
under a secret kept out of the database, and its answers so far are sealed under a key derived
from the number, that secret and the conversation's id. Without the number, the database alone
(even with the secret) opens nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid

import nacl.exceptions
import nacl.secret

from feedback.errors import FeedbackError
from feedback.timeseals import TimeSeal

FRAGMENT_SIZE = 96  # every sealed answer is padded to this: lengths say nothing


class BadFragment(FeedbackError):
    pass


def normalise(number: str) -> str:
    """Digits with a leading + if there was one: '+1 (555) 010-0000' -> '+15550100000'."""
    digits = re.sub(r"\D", "", number)
    return ("+" if number.strip().startswith("+") else "") + digits


def phone_key(secret: bytes, number: str) -> bytes:
    return hmac.new(
        secret, b"feedback.phone.v1\0" + normalise(number).encode(), hashlib.sha256
    ).digest()


def message_key(secret: bytes, gateway: str, message_id: str) -> bytes:
    """A gateway's message id, keyed (it could be matched with the gateway's own logs)."""
    data = b"feedback.sms-message.v1\0" + gateway.encode() + b"\0" + message_id.encode()
    return hmac.new(secret, data, hashlib.sha256).digest()


def fragment_key(secret: bytes, number: str, session_id: uuid.UUID) -> bytes:
    data = b"feedback.sms-fragments.v1\0" + normalise(number).encode() + session_id.bytes
    return hmac.new(secret, data, hashlib.sha256).digest()


def idle_seal(secret: bytes) -> TimeSeal:
    """What seals the moment a conversation goes idle: the survivor app writes it, the worker
    reads it to forget idle conversations; a copy of the database reads neither."""
    return TimeSeal(secret, "feedback.sms-idle.v1")


def seal_answer(key: bytes, question_id: str, value: int | str) -> bytes:
    text = json.dumps([question_id, value], separators=(",", ":")).encode()
    if len(text) >= FRAGMENT_SIZE:
        raise BadFragment("an answer is too long to seal as a fragment")
    padded = text + b" " * (FRAGMENT_SIZE - len(text))
    return bytes(nacl.secret.SecretBox(key).encrypt(padded))


def open_answer(key: bytes, fragment: bytes) -> tuple[str, int | str]:
    try:
        question_id, value = json.loads(nacl.secret.SecretBox(key).decrypt(fragment))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise BadFragment("a sealed answer does not open with this conversation's key") from None
    if not isinstance(question_id, str) or type(value) not in (int, str):
        raise BadFragment("a sealed answer is not a question and an answer")
    return question_id, value
