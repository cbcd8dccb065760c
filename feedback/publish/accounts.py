"""Staff accounts: who may log in, what they may see, and the one-time links that let an
invited user choose a passphrase.

Admins see every program of their organisation; managers and viewers see only the programs
assigned to them; viewers change nothing. A login answers the same, in about the same time,
whether the account exists, is disabled, is waiting or the passphrase is wrong: the passphrase
is always checked against some argon2id hash. After three failures in a row, each further
check of the account waits 1, 2, 4 ... seconds, at most a minute (see ``wait_after``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.offload import KNOWN_DEVICES, PASSWORDS, STRENGTH
from feedback.passphrases import WeakPassphrase, check_passphrase
from feedback.passwords import hash_password, verify_password
from feedback.timeseals import TimeSeal

Role = Literal["admin", "manager", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "manager", "viewer")
LINK_VALID_FOR = dt.timedelta(days=7)  # to the end of the 7th day (UTC) from now


class AccountError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Staff:
    id: uuid.UUID
    organisation_id: uuid.UUID
    email: str
    display_name: str | None
    role: Role
    programs: frozenset[uuid.UUID] | None  # None: every program (admins)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "manager")

    def sees(self, program_id: uuid.UUID) -> bool:
        return self.programs is None or program_id in self.programs


_STAND_IN: list[str] = []


async def _stand_in_hash() -> str:
    """Checked when there is no usable hash, so that every login costs one argon2id."""
    if not _STAND_IN:
        _STAND_IN.append(await hash_password(secrets.token_urlsafe(16)))
    return _STAND_IN[0]


@dataclass(frozen=True, slots=True)
class Candidate:
    """The account an address names, as a login attempt finds it."""

    user_id: uuid.UUID | None
    organisation_id: uuid.UUID | None
    password_hash: str | None  # None: no usable hash (unknown, disabled, not yet set, or waiting)
    device: bytes | None = None  # the known device's id hash, spent by this claim


# A check claims its account for this long: guessers in parallel get one check at a time.
CLAIM = dt.timedelta(seconds=10)
FREE_FAILURES = 3  # failures in a row before each further check is put off
LONGEST_WAIT = dt.timedelta(minutes=1)
DEVICE_KNOWN_FOR = dt.timedelta(days=90)


def wait_after(failures: int) -> dt.timedelta:
    """How long the next check of an account waits after ``failures`` in a row: nothing for
    the first few, then 1, 2, 4 ... seconds, never more than a minute. The owner, logging in
    from a browser where they logged in before, does not wait (see ``claim``)."""
    if failures < FREE_FAILURES:
        return dt.timedelta(0)
    return min(LONGEST_WAIT, dt.timedelta(seconds=2 ** min(failures - FREE_FAILURES, 10)))


async def known_device(conn: Connection, email: str, device: bytes) -> bool:
    """Whether ``device`` (a cookie's id hash) is a live known device of the account: its
    cookie's signature alone says only that it was once."""
    live: bool = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM staff_devices d JOIN users u ON u.id = d.user_id
             WHERE d.id_hash = $1 AND u.email = $2 AND d.expires_on >= utc_today()
        )
        """,
        device,
        email,
    )
    return live


def login_waits(session_secret: bytes) -> TimeSeal:
    """What seals the moment each account may be checked again (``users.next_try``)."""
    return TimeSeal(session_secret, "feedback.login-waits.v1")


def waiting(waits: TimeSeal, next_try: bytes | None) -> bool:
    """Whether an account's next check is still put off (``users.next_try``, sealed: a
    readable time there would be a clock any guesser could wind; feedback.timeseals). One
    sealed under another secret waits for nothing."""
    until = waits.open(next_try)
    return until is not None and until > dt.datetime.now(dt.UTC)


async def claim(
    conn: Connection, waits: TimeSeal, email: str, device: bytes | None = None
) -> Candidate:
    """Find the account and claim its next check, holding its row: an account whose check is
    put off (or claimed by a check in flight) yields no hash, like an unknown address, so
    guessers in parallel get one check at a time. A known device of that account
    (``device``: the id hash from its cookie) skips the wait, once: the claim spends it, and
    only a success makes a new one."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """
            SELECT id, organisation_id, password_hash, next_try,
                   disabled_on IS NULL AND password_hash IS NOT NULL AS usable
              FROM users WHERE email = $1 FOR UPDATE
            """,
            email,
        )
        if row is None:
            return Candidate(None, None, None)
        known = device is not None and bool(
            await conn.fetchval(
                "DELETE FROM staff_devices WHERE id_hash = $1 AND user_id = $2 "
                "AND expires_on >= utc_today() RETURNING true",
                device,
                row["id"],
            )
        )
        if not row["usable"] or (waiting(waits, row["next_try"]) and not known):
            return Candidate(row["id"], row["organisation_id"], None)
        if not known:
            await conn.execute(
                "UPDATE users SET next_try = $2 WHERE id = $1",
                row["id"],
                waits.seal(dt.datetime.now(dt.UTC) + CLAIM),
            )
    return Candidate(
        row["id"], row["organisation_id"], row["password_hash"], device if known else None
    )


async def check(candidate: Candidate, password: str) -> bool:
    """Whether the passphrase opens the claimed account: one argon2id whatever the case, off
    the event loop and holding no database connection; a known device's check in a lane of
    its own, so that a flood of logins does not keep the owner waiting."""
    stored = candidate.password_hash or await _stand_in_hash()
    lane = KNOWN_DEVICES if candidate.device else PASSWORDS
    right = await verify_password(stored, password, lane=lane)
    return right and candidate.password_hash is not None


async def release(conn: Connection, candidate: Candidate) -> None:
    """Give back a claim whose check never ran (the server was too busy): the owner's next
    login need not wait for it, and a known device stays known."""
    if candidate.user_id is None or candidate.password_hash is None:
        return
    if candidate.device is not None:
        await remember_device(conn, candidate, candidate.device)
    else:
        await conn.execute("UPDATE users SET next_try = NULL WHERE id = $1", candidate.user_id)


async def remember_device(conn: Connection, candidate: Candidate, device: bytes) -> None:
    """Know this browser (its cookie's id hash) at the next login of the candidate's account,
    until the end of the day DEVICE_KNOWN_FOR from now."""
    await conn.execute(
        """
        INSERT INTO staff_devices (id_hash, organisation_id, user_id, expires_on)
        VALUES ($1, $2, $3, utc_today() + $4::integer)
        """,
        device,
        candidate.organisation_id,
        candidate.user_id,
        DEVICE_KNOWN_FOR.days,
    )


async def settle(conn: Connection, waits: TimeSeal, candidate: Candidate, *, right: bool) -> None:
    """Record the check's outcome: a success clears the account's failures; a failure puts
    off its next check (``wait_after``) and is counted, per account and day, for its
    organisation's admins."""
    async with conn.transaction():
        if candidate.password_hash is not None:
            failures: int = await conn.fetchval(
                "UPDATE users SET failed_logins = CASE WHEN $2 THEN 0 ELSE failed_logins + 1 END "
                "WHERE id = $1 RETURNING failed_logins",
                candidate.user_id,
                right,
            )
            wait = wait_after(failures)
            await conn.execute(
                "UPDATE users SET next_try = $2 WHERE id = $1",
                candidate.user_id,
                waits.seal(dt.datetime.now(dt.UTC) + wait) if wait else None,
            )
        if not right:
            await conn.execute(
                """
                INSERT INTO login_failures (organisation_id, user_id, day, attempts)
                VALUES ($1, $2, utc_today(), 1)
                ON CONFLICT (user_id, day) DO UPDATE SET attempts = login_failures.attempts + 1
                """,
                candidate.organisation_id,
                candidate.user_id,
            )


async def unlock(conn: Connection, *, organisation_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """Clear an account's failures and waiting (an admin's action); returns its email."""
    email: str | None = await conn.fetchval(
        "UPDATE users SET failed_logins = 0, next_try = NULL "
        "WHERE organisation_id = $1 AND id = $2 RETURNING email",
        organisation_id,
        user_id,
    )
    if email is None:
        raise AccountError("no such user in this organisation")
    return email


async def _forget_logins(conn: Connection, user_id: uuid.UUID) -> None:
    """End the user's sessions and forget their known devices."""
    await conn.execute("DELETE FROM staff_sessions WHERE user_id = $1", user_id)
    await conn.execute("DELETE FROM staff_devices WHERE user_id = $1", user_id)


async def load_staff(conn: Connection, user_id: uuid.UUID) -> Staff | None:
    """The user, if enabled, with the programs they may see."""
    row = await conn.fetchrow(
        """
        SELECT u.id, u.organisation_id, u.email, u.display_name, u.role,
               array_remove(array_agg(up.program_id), NULL) AS programs
          FROM users u LEFT JOIN user_programs up ON up.user_id = u.id
         WHERE u.id = $1 AND u.disabled_on IS NULL
         GROUP BY u.id
        """,
        user_id,
    )
    if row is None:
        return None
    return Staff(
        id=row["id"],
        organisation_id=row["organisation_id"],
        email=row["email"],
        display_name=row["display_name"],
        role=row["role"],
        programs=None if row["role"] == "admin" else frozenset(row["programs"]),
    )


async def check_new_password(password: str) -> None:
    """zxcvbn's judgement, off the event loop in its narrow lane (seconds of CPU for a hostile
    input); ``offload.Busy`` when too many are waiting."""
    try:
        await STRENGTH.run(check_passphrase, password)
    except WeakPassphrase as exc:
        raise AccountError(str(exc)) from None


async def create_user(
    conn: Connection,
    *,
    organisation_id: uuid.UUID,
    email: str,
    role: Role,
    display_name: str | None = None,
    programs: Sequence[uuid.UUID] = (),
    password: str | None = None,
) -> uuid.UUID:
    """A new account; without a password it can log in only after using a password link."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise AccountError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise AccountError(f"the role is one of {', '.join(ROLES)}")
    password_hash = None
    if password is not None:
        await check_new_password(password)
        password_hash = await hash_password(password)
    async with conn.transaction():
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)", email):
            raise AccountError(f"there is already an account for {email}")
        user_id: uuid.UUID = await conn.fetchval(
            """
            INSERT INTO users (organisation_id, email, display_name, role, password_hash)
            VALUES ($1, $2, $3, $4, $5) RETURNING id
            """,
            organisation_id,
            email,
            display_name or None,
            role,
            password_hash,
        )
        await conn.executemany(
            "INSERT INTO user_programs (organisation_id, user_id, program_id) VALUES ($1, $2, $3)",
            [(organisation_id, user_id, program_id) for program_id in programs],
        )
    return user_id


def _link_hash(token: str) -> bytes:
    return hashlib.sha256(b"feedback.password-link.v1\0" + token.encode()).digest()


async def make_password_link(
    conn: Connection, *, organisation_id: uuid.UUID, user_id: uuid.UUID
) -> str:
    """A one-time token (shown once) with which the user chooses a passphrase; earlier unused
    links for the user stop working."""
    token = secrets.token_urlsafe(24)
    # The newest link is the only one: one shown before and perhaps leaked stops working.
    await conn.execute("DELETE FROM password_links WHERE user_id = $1 AND used_on IS NULL", user_id)
    await conn.execute(
        """
        INSERT INTO password_links (token_hash, organisation_id, user_id, expires_on)
        VALUES ($1, $2, $3, utc_today() + $4::integer)
        """,
        _link_hash(token),
        organisation_id,
        user_id,
        LINK_VALID_FOR.days,
    )
    return token


async def link_user(conn: Connection, token: str) -> str | None:
    """The email of the account a valid, unused link is for."""
    email: str | None = await conn.fetchval(
        """
        SELECT u.email FROM password_links l JOIN users u ON u.id = l.user_id
         WHERE l.token_hash = $1 AND l.used_on IS NULL AND l.expires_on >= utc_today()
           AND u.disabled_on IS NULL
        """,
        _link_hash(token),
    )
    return email


async def use_password_link(conn: Connection, token: str, password_hash: str) -> uuid.UUID:
    """Set the passphrase (already checked and hashed: see ``set_password`` in auth_pages,
    which does both holding no connection), spend the link and end the account's sessions,
    in one transaction; a reused link changes nothing."""
    async with conn.transaction():
        user_id: uuid.UUID | None = await conn.fetchval(
            """
            UPDATE password_links l SET used_on = utc_today()
              FROM users u
             WHERE l.token_hash = $1 AND l.used_on IS NULL AND l.expires_on >= utc_today()
               AND u.id = l.user_id AND u.disabled_on IS NULL
            RETURNING l.user_id
            """,
            _link_hash(token),
        )
        if user_id is None:
            raise AccountError("this link has been used or has expired: ask an admin for a new one")
        await conn.execute(
            "UPDATE users SET password_hash = $2, failed_logins = 0, next_try = NULL WHERE id = $1",
            user_id,
            password_hash,
        )
        # A new passphrase (a reset, perhaps after a compromise) ends every session opened
        # with the old one, and forgets the browsers that logged in with it.
        await _forget_logins(conn, user_id)
    return user_id


async def disable_user(conn: Connection, *, organisation_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """Disable the account, end its sessions and revoke its API tokens; returns its email."""
    async with conn.transaction():
        email: str | None = await conn.fetchval(
            "UPDATE users SET disabled_on = coalesce(disabled_on, utc_today()) "
            "WHERE organisation_id = $1 AND id = $2 RETURNING email",
            organisation_id,
            user_id,
        )
        if email is None:
            raise AccountError("no such user in this organisation")
        await _forget_logins(conn, user_id)
        await conn.execute(
            "UPDATE api_tokens SET revoked_on = utc_today() "
            "WHERE user_id = $1 AND revoked_on IS NULL",
            user_id,
        )
    return email


async def enable_user(conn: Connection, *, organisation_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """Let a disabled account log in again (with the passphrase it had); returns its email.
    Its sessions, devices and API tokens stay ended: it logs in afresh."""
    email: str | None = await conn.fetchval(
        "UPDATE users SET disabled_on = NULL WHERE organisation_id = $1 AND id = $2 "
        "RETURNING email",
        organisation_id,
        user_id,
    )
    if email is None:
        raise AccountError("no such user in this organisation")
    return email


async def change_access(
    conn: Connection,
    *,
    organisation_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    programs: Sequence[uuid.UUID],
) -> str:
    """Give an account a role and the programs it sees (an admin sees all of them); returns
    its email. Its sessions end, so that no page open with the old rights acts on them."""
    if role not in ROLES:
        raise AccountError(f"the role is one of {', '.join(ROLES)}")
    async with conn.transaction():
        email: str | None = await conn.fetchval(
            "UPDATE users SET role = $3 WHERE organisation_id = $1 AND id = $2 RETURNING email",
            organisation_id,
            user_id,
            role,
        )
        if email is None:
            raise AccountError("no such user in this organisation")
        await conn.execute("DELETE FROM user_programs WHERE user_id = $1", user_id)
        await conn.executemany(
            "INSERT INTO user_programs (organisation_id, user_id, program_id) VALUES ($1, $2, $3)",
            [(organisation_id, user_id, program) for program in programs if role != "admin"],
        )
        await conn.execute("DELETE FROM staff_sessions WHERE user_id = $1", user_id)
    return email
