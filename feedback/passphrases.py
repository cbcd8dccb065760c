"""How strong a passphrase must be, judged by zxcvbn with its real frequency lists.

Key passphrases guard every answer an organisation will ever receive against whoever copies the
database, who can guess offline for as long as they like: they need zxcvbn's top score. Staff
passphrases are checked online (argon2id per try, accounts locked after a few failures) and
need "safely unguessable". Only the first ``MAX_SCORED`` characters are scored, so that the
check costs a bounded time whatever is typed.
"""

from __future__ import annotations

import re

from zxcvbn import zxcvbn

from feedback.errors import FeedbackError

MIN_PASSPHRASE = 12
MAX_SCORED = 72  # zxcvbn refuses longer input (a 500, before this limit)
KEY_SCORE = 4  # zxcvbn: "very unguessable", about 10^10 guesses or more
STAFF_SCORE = 3  # zxcvbn: "safely unguessable", about 10^8 guesses or more
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


class WeakPassphrase(FeedbackError):
    pass


def check_passphrase(passphrase: str, *, min_score: int = STAFF_SCORE) -> None:
    """Refuse a passphrase an attacker could guess; say why."""
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
        (zxcvbn(candidate[:MAX_SCORED], user_inputs=FAMOUS) for candidate in {passphrase, folded}),
        key=lambda e: int(e["score"]),
    )
    if estimate["score"] < min_score:
        warning = estimate["feedback"]["warning"] or "it would be easy to guess"
        raise WeakPassphrase(
            f"that passphrase is too easy to guess ({warning.rstrip('.').lower()}); "
            + (
                "five or more random words work well"
                if min_score >= KEY_SCORE
                else "four or more random words work well"
            )
        )


def check_key_passphrase(passphrase: str) -> None:
    """A passphrase that will wrap private keys: zxcvbn's top score."""
    check_passphrase(passphrase, min_score=KEY_SCORE)
