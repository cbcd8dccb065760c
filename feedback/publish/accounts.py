"""Staff accounts: who may log in, what they may see, and the one-time links that let an
invited user choose a passphrase.

Admins see every program of their organisation; managers and viewers see only the programs
assigned to them; viewers change nothing. A login answers the same, in about the same time,
whether the account exists, is disabled, is locked or the passphrase is wrong: the passphrase
is always checked against some argon2id hash. Five failures in a row lock an account for a
quarter of an hour.
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
from feedback.passphrases import WeakPassphrase, check_passphrase
from feedback.passwords import hash_password, verify_password

Role = Literal["admin", "manager", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "manager", "viewer")
MAX_FAILURES = 5
LOCKED_FOR = dt.timedelta(minutes=15)
LINK_VALID_FOR = dt.timedelta(days=7)


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


async def authenticate(conn: Connection, email: str, password: str) -> uuid.UUID | None:
    """The user's id when the passphrase is right and the account may log in; else None."""
    row = await conn.fetchrow(
        """
        SELECT id, password_hash,
               disabled_at IS NULL AND password_hash IS NOT NULL
               AND (locked_until IS NULL OR locked_until < now()) AS usable
          FROM users WHERE email = $1
        """,
        email.strip().lower(),
    )
    usable = row is not None and row["usable"]
    known = row["password_hash"] if row is not None and usable else await _stand_in_hash()
    right = await verify_password(known, password)
    if row is None or not usable:
        return None
    if right:
        await conn.execute(
            "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", row["id"]
        )
        user_id: uuid.UUID = row["id"]
        return user_id
    await conn.execute(
        """
        UPDATE users
           SET failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
               locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + $3 END
         WHERE id = $1
        """,
        row["id"],
        MAX_FAILURES,
        LOCKED_FOR,
    )
    return None


async def load_staff(conn: Connection, user_id: uuid.UUID) -> Staff | None:
    """The user, if enabled, with the programs they may see."""
    row = await conn.fetchrow(
        """
        SELECT u.id, u.organisation_id, u.email, u.display_name, u.role,
               array_remove(array_agg(up.program_id), NULL) AS programs
          FROM users u LEFT JOIN user_programs up ON up.user_id = u.id
         WHERE u.id = $1 AND u.disabled_at IS NULL
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


def check_new_password(password: str) -> None:
    try:
        check_passphrase(password)
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
        check_new_password(password)
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
    """A one-time token (shown once) with which the user chooses a passphrase."""
    token = secrets.token_urlsafe(24)
    await conn.execute(
        """
        INSERT INTO password_links (token_hash, organisation_id, user_id, expires_at)
        VALUES ($1, $2, $3, now() + $4)
        """,
        _link_hash(token),
        organisation_id,
        user_id,
        LINK_VALID_FOR,
    )
    return token


async def link_user(conn: Connection, token: str) -> str | None:
    """The email of the account a valid, unused link is for."""
    email: str | None = await conn.fetchval(
        """
        SELECT u.email FROM password_links l JOIN users u ON u.id = l.user_id
         WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now()
           AND u.disabled_at IS NULL
        """,
        _link_hash(token),
    )
    return email


async def use_password_link(conn: Connection, token: str, password: str) -> uuid.UUID:
    """Set the passphrase and spend the link, in one transaction; a reused link changes
    nothing."""
    check_new_password(password)
    password_hash = await hash_password(password)
    async with conn.transaction():
        user_id: uuid.UUID | None = await conn.fetchval(
            """
            UPDATE password_links l SET used_at = now()
              FROM users u
             WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now()
               AND u.id = l.user_id AND u.disabled_at IS NULL
            RETURNING l.user_id
            """,
            _link_hash(token),
        )
        if user_id is None:
            raise AccountError("this link has been used or has expired: ask an admin for a new one")
        await conn.execute(
            "UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL "
            "WHERE id = $1",
            user_id,
            password_hash,
        )
    return user_id


async def disable_user(conn: Connection, *, organisation_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """Disable the account, end its sessions and revoke its API tokens; returns its email."""
    async with conn.transaction():
        email: str | None = await conn.fetchval(
            "UPDATE users SET disabled_at = coalesce(disabled_at, now()) "
            "WHERE organisation_id = $1 AND id = $2 RETURNING email",
            organisation_id,
            user_id,
        )
        if email is None:
            raise AccountError("no such user in this organisation")
        await conn.execute("DELETE FROM staff_sessions WHERE user_id = $1", user_id)
        await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            user_id,
        )
    return email
