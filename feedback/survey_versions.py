"""Survey definitions as the database keeps them: one immutable row per version.

`feedback surveys load FILE` stores a TOML definition (checked by feedback.surveys). A version
already stored is never changed, because the answers sealed under it must keep meaning what
they meant: a definition stored already (under any version number) stores nothing; a changed
wording or set of options under the same question ids becomes the next version; changed
question ids under a version that exists are refused, naming the line, since the file then
says one version and means another.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path

from feedback.db import Connection, Record
from feedback.errors import FeedbackError
from feedback.surveys import Survey, from_json, line_of, parse_definition


class SurveyRefused(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Loaded:
    survey: Survey
    created: bool  # False: this exact definition was stored already
    asked_version: int  # the version the file gave


def read_definition(path: Path) -> tuple[Survey, str]:
    """A definition file, checked (feedback.surveys), with its text."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SurveyRefused(f"cannot read {path}: {exc}") from None
    return parse_definition(text, str(path)), text


async def store_survey(
    conn: Connection, organisation_id: uuid.UUID, survey: Survey, text: str
) -> Loaded:
    """Store ``survey`` (parsed from ``text``) as the rules above say; all in one transaction
    that locks the organisation's versions of this survey."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"survey:{organisation_id}:{survey.slug}"
        )
        rows = await conn.fetch(
            "SELECT version, definition FROM surveys WHERE organisation_id = $1 AND slug = $2",
            organisation_id,
            survey.slug,
        )
        stored = {row["version"]: from_json(row["definition"]) for row in rows}
        for known in stored.values():
            if _content(known) == _content(survey):
                return Loaded(known, False, survey.version)
        same = stored.get(survey.version)
        if same is not None:
            _check_same_questions(survey, same, text, max(stored) + 1)
            survey = dataclasses.replace(survey, version=max(stored) + 1)
        await conn.execute(
            "INSERT INTO surveys (organisation_id, slug, version, definition) "
            "VALUES ($1, $2, $3, $4)",
            organisation_id,
            survey.slug,
            survey.version,
            survey.to_json(),
        )
    return Loaded(survey, True, same.version if same is not None else survey.version)


def _content(survey: Survey) -> dict[str, object]:
    """What a definition says, whatever its version number."""
    return {**survey.to_json(), "version": None}


def _check_same_questions(survey: Survey, stored: Survey, text: str, next_version: int) -> None:
    old = [q.id for q in stored.questions]
    new = [q.id for q in survey.questions]
    if old == new:
        return
    changed = next((qid for qid in new if qid not in old), None)
    where = line_of(text, "id", changed) if changed else line_of(text, "version")
    what = (
        f"question {changed!r} is not in version {stored.version} as stored"
        if changed
        else f"the questions of version {stored.version} as stored are {', '.join(old)}"
    )
    raise SurveyRefused(
        f"line {where}: {what}. A version keeps its questions: give this definition "
        f"version = {next_version} and load it again. Nothing was stored."
    )


async def surveys(conn: Connection, organisation_id: uuid.UUID) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        """
        SELECT slug, version, definition ->> 'title' AS title,
               jsonb_array_length(definition -> 'questions') AS questions, created_on
          FROM surveys WHERE organisation_id = $1 ORDER BY slug, version
        """,
        organisation_id,
    )
    return rows
