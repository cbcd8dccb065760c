"""Organisations and their programs: what an operator sets up before anyone is asked anything.

Used by the `feedback organisations` and `feedback programs` commands. Every value is checked
here with a message that says what is allowed, before the database's own checks (which would
answer with a constraint's name) are reached.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from feedback.db import Connection, Record
from feedback.errors import FeedbackError
from feedback.phones import normalise

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
SMS_NUMBER = re.compile(r"\+?[0-9]{3,15}")
WRITTEN_NUMBER = re.compile(r"\+?[0-9 ()-]+")  # how a number may be written before normalising


class SetupError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Setting:
    """An organisation setting an operator may change: its column and its longest value
    (None: not a text)."""

    column: str
    longest: int | None
    optional: bool  # an empty value clears it


SETTINGS: Mapping[str, Setting] = {
    "name": Setting("name", 200, optional=False),
    "sms_name": Setting("sms_name", 40, optional=True),
    "sms_help": Setting("sms_help_text", 140, optional=True),
    "sms_number": Setting("sms_number", None, optional=True),
    "comments": Setting("comments_enabled", None, optional=False),
}


def check_slug(slug: str, what: str) -> str:
    if not SLUG.fullmatch(slug):
        raise SetupError(
            f"{slug!r} cannot be {what}'s short name: use 2 to 63 lower-case letters, digits "
            "and dashes, starting with a letter or digit"
        )
    return slug


def check_name(name: str, what: str, longest: int = 200) -> str:
    name = name.strip()
    if not 1 <= len(name) <= longest:
        raise SetupError(f"{what} is 1 to {longest} characters; got {len(name)}")
    if any(not character.isprintable() for character in name):
        raise SetupError(f"{what} holds a control character (a new line, a tab...): remove it")
    return name


def check_setting(key: str, value: str | bool) -> str | bool | None:
    """A setting's value as stored: texts trimmed, an empty optional text cleared (None), an
    SMS number in its digits; a clear error for anything else."""
    setting = SETTINGS.get(key)
    if setting is None:
        raise SetupError(f"no setting {key!r}; the settings are {', '.join(SETTINGS)}")
    if isinstance(value, bool):
        if setting.longest is not None or key != "comments":
            raise SetupError(f"{key} is a text")
        return value
    if key == "comments":
        raise SetupError("comments is on or off")
    if setting.optional and not value.strip():
        return None
    if key == "sms_number":
        number = normalise(value)
        if not WRITTEN_NUMBER.fullmatch(value.strip()) or not SMS_NUMBER.fullmatch(number):
            raise SetupError(
                f"{value!r} is not a phone number: write it with its country code, as the "
                "SMS provider shows it (+15550100000)"
            )
        return number
    return check_name(value, f"the {key.replace('_', ' ')}", setting.longest or 200)


async def create_organisation(conn: Connection, slug: str, name: str) -> uuid.UUID:
    check_slug(slug, "an organisation")
    name = check_name(name, "the organisation's name")
    try:
        found: uuid.UUID = await conn.fetchval(
            "INSERT INTO organisations (slug, name) VALUES ($1, $2) RETURNING id", slug, name
        )
    except asyncpg.UniqueViolationError:
        raise SetupError(
            f"an organisation {slug!r} exists already (`feedback organisations list`)"
        ) from None
    return found


async def organisations(conn: Connection) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        """
        SELECT o.slug, o.name, o.sms_name, o.sms_help_text, o.sms_number, o.comments_enabled,
               o.epsilon_per_year, (SELECT count(*) FROM programs p
                                     WHERE p.organisation_id = o.id) AS programs
          FROM organisations o ORDER BY o.slug
        """
    )
    return rows


async def change_organisation(
    conn: Connection, organisation_id: uuid.UUID, changes: Mapping[str, str | bool]
) -> None:
    """Set the given settings (checked first: one bad value changes nothing)."""
    checked = {SETTINGS[key].column: check_setting(key, value) for key, value in changes.items()}
    if checked.get("comments_enabled") is False and await _counts_comments(conn, organisation_id):
        raise SetupError(
            "a plan line of this year or later counts comments written: remove it first "
            "(`feedback plan show`, then `feedback plan remove`), or keep comments on"
        )
    if not checked:
        raise SetupError(
            f"say what to change: {', '.join('--' + k.replace('_', '-') for k in SETTINGS)}"
        )
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(checked, start=2))
    try:
        await conn.execute(
            f"UPDATE organisations SET {assignments} WHERE id = $1",  # columns from SETTINGS
            organisation_id,
            *checked.values(),
        )
    except asyncpg.UniqueViolationError:
        raise SetupError("another organisation already uses that SMS number") from None


async def _counts_comments(conn: Connection, organisation_id: uuid.UUID) -> bool:
    found: bool = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM release_plans p JOIN surveys s ON s.id = p.survey_id,
                   jsonb_array_elements(s.definition -> 'questions') q
             WHERE p.organisation_id = $1
               AND p.budget_year >= extract(year FROM now())
               AND q ->> 'type' = 'comment' AND q ->> 'id' = ANY (p.questions))
        """,
        organisation_id,
    )
    return found


async def create_program(
    conn: Connection, organisation_id: uuid.UUID, slug: str, name: str
) -> uuid.UUID:
    check_slug(slug, "a program")
    name = check_name(name, "the program's name")
    try:
        found: uuid.UUID = await conn.fetchval(
            "INSERT INTO programs (organisation_id, slug, name) VALUES ($1, $2, $3) RETURNING id",
            organisation_id,
            slug,
            name,
        )
    except asyncpg.UniqueViolationError:
        raise SetupError(
            f"a program {slug!r} exists already in this organisation (`feedback programs list`)"
        ) from None
    return found


async def rename_program(
    conn: Connection, organisation_id: uuid.UUID, slug: str, name: str
) -> None:
    name = check_name(name, "the program's name")
    renamed = await conn.fetchval(  # through its function: see migrations/0029
        "SELECT rename_program($1, $2, $3)", organisation_id, slug, name
    )
    if renamed is None:
        raise SetupError(f"no program {slug!r} in this organisation (`feedback programs list`)")


async def programs(conn: Connection, organisation_id: uuid.UUID) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        "SELECT slug, name, languages FROM programs WHERE organisation_id = $1 ORDER BY slug",
        organisation_id,
    )
    return rows
