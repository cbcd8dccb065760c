"""Synthetic answers for the demo: a few hundred submissions over past months, sealed in the
standard envelope to the demo organisation's key, and their releases. Nothing real."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal

from asyncpg import Record

from feedback.aggregate.keys import unlock_all
from feedback.aggregate.scheduled import make_planned
from feedback.db import Connection
from feedback.envelope import Envelope
from feedback.errors import FeedbackError
from feedback.periods import Period
from feedback.plans import add_line, plan_of
from feedback.sealing import load_public_key, seal
from feedback.surveys import PREFER_NOT, Survey, from_json

PERIODS = ("2026-Q2", "2026-Q3")
PER_PROGRAM_AND_PERIOD = 250


def _answers(rng: random.Random, survey: Survey, program_index: int) -> dict[str, int | str]:
    """Mostly positive treatment, outcomes that improve with time in program, some skips."""
    answers: dict[str, int | str] = {}
    band = rng.choice(["under_3", "3_to_6", "6_to_12", "over_12"])
    progress = ["under_3", "3_to_6", "6_to_12", "over_12"].index(band)
    for question in survey.questions:
        if question.type == "comment" or rng.random() < 0.06:
            continue  # skipped
        if question.id == "time_in_program":
            answers[question.id] = band
        elif question.type == "single_choice":
            answers[question.id] = rng.choice(question.options).id
        elif rng.random() < 0.03:
            answers[question.id] = PREFER_NOT
        else:
            lean = (
                3.6
                - 0.4 * program_index
                + (0.3 * progress if question.section == "outcomes" else 0)
            )
            value = round(rng.gauss(lean if not question.reverse else 6 - lean, 1.0))
            answers[question.id] = min(5, max(1, value))
    return answers


async def _survey_row(conn: Connection, organisation_id: uuid.UUID) -> Record:
    row = await conn.fetchrow(
        "SELECT id, definition FROM surveys WHERE organisation_id = $1", organisation_id
    )
    if row is None:
        raise FeedbackError("the demo organisation has no survey")
    return row


async def seed_submissions(conn: Connection, organisation_id: uuid.UUID) -> None:
    """Once per demo database: synthetic sealed submissions for each program and period."""
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM submissions WHERE organisation_id = $1)", organisation_id
    ):
        return
    key = await conn.fetchrow(
        "SELECT id, public_key FROM collection_keys "
        "WHERE organisation_id = $1 AND retired_at IS NULL",
        organisation_id,
    )
    survey_row = await _survey_row(conn, organisation_id)
    programs = await conn.fetch(
        "SELECT id FROM programs WHERE organisation_id = $1 ORDER BY slug DESC", organisation_id
    )
    if key is None:
        raise FeedbackError("the demo organisation has no collection key")
    survey, recipient = from_json(survey_row["definition"]), load_public_key(key["public_key"])
    rng = random.Random(2026)  # noqa: S311 - synthetic demo data, not secrets
    rows = []
    for program_index, program in enumerate(programs):
        for period_text in PERIODS:
            period = Period.parse(period_text)
            first, last = period.weeks()
            weeks = (last - first).days // 7
            for _ in range(PER_PROGRAM_AND_PERIOD):
                answers = _answers(rng, survey, program_index)
                envelope = Envelope(survey.slug, survey.version, rng.choice(["en", "es"]), answers)
                week = first + dt.timedelta(weeks=rng.randrange(weeks))
                rows.append(
                    (
                        organisation_id,
                        program["id"],
                        survey_row["id"],
                        key["id"],
                        rng.choice(["web", "web", "web_nojs"]),
                        week,
                        seal(recipient, envelope.to_plaintext()),
                    )
                )
    await conn.executemany(
        """
        INSERT INTO submissions (organisation_id, program_id, survey_id, key_id, channel,
                                 received_week, ciphertext)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        rows,
    )


async def release_past_periods(
    conn: Connection, organisation_id: uuid.UUID, passphrase: str
) -> int:
    """Plan the demo year (once) and make its releases for the past periods. Already-made
    releases are returned, not remade."""
    year = Period.parse(PERIODS[0]).budget_year
    lines = await plan_of(conn, organisation_id, year)
    if not lines:
        await _plan(conn, organisation_id, year)
        lines = await plan_of(conn, organisation_id, year)
    keys = await unlock_all(conn, organisation_id, passphrase)
    work = [(line, Period.parse(p)) for p in PERIODS for line in lines]
    made = await make_planned(conn, work, keys=keys, database_url=None)
    return sum(item.release is not None and item.release.created for item in made)


async def _plan(conn: Connection, organisation_id: uuid.UUID, year: int) -> None:
    """Per program, every quarter: the overall table (epsilon 0.5), the equity view by gender
    and the outcomes by time in program (0.25 each). The two programs may serve the same
    survivors, so their releases add up: 2 x 4 x 1 = 8 of the budget of 10 a year."""
    survey_row = await _survey_row(conn, organisation_id)
    survey = from_json(survey_row["definition"])
    overall = [
        q.id
        for q in survey.questions
        if q.type != "comment" and not q.demographic and q.id != "time_in_program"
    ]
    outcomes = [q for q in overall if survey.question(q).section == "outcomes"]
    tables = [
        (overall, None, "0.5"),
        (overall, "gender", "0.25"),
        (outcomes, "time_in_program", "0.25"),
    ]
    for program_id in await conn.fetch(
        "SELECT id FROM programs WHERE organisation_id = $1", organisation_id
    ):
        for questions, breakdown, epsilon in tables:
            await add_line(
                conn,
                organisation_id=organisation_id,
                year=year,
                program_id=program_id["id"],
                survey_id=survey_row["id"],
                granularity="quarter",
                questions=questions,
                breakdown=breakdown,
                epsilon=Decimal(epsilon),
            )
