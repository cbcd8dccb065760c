"""Synthetic answers for the demo: a few hundred submissions over past months, sealed in the
standard envelope to the demo organisation's key, and their releases. Nothing real."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal
from pathlib import Path

from asyncpg import Record

from feedback.aggregate.keys import create_collection_key, unlock_all
from feedback.aggregate.scheduled import make_planned
from feedback.aggregate.signing import create_signing_key
from feedback.cli.networks import add_member, create_network, import_bundle, summarise_network
from feedback.cli.publications import export
from feedback.cli.publishing import publish
from feedback.db import Connection
from feedback.envelope import Envelope
from feedback.errors import FeedbackError
from feedback.minisign import PublicKey
from feedback.networks import Requirements
from feedback.schedules import add_schedule, schedule_of
from feedback.sealing import load_public_key, seal
from feedback.stats.advisor import advise
from feedback.stats.periods import Granularity, Period
from feedback.stats.plans import add_line, plan_of
from feedback.surveys import PREFER_NOT, Survey, from_json, load_definition
from feedback.wrapping import KdfCost

# Two large programs (about 1,000 respondents a year each, as before 2025-Q1 to 2026-Q3) and a
# small one (about 60 in 2025), as programs in this field are.
LARGE = ("shelter", "legal")
SMALL = "drop-in"
LARGE_PERIODS = ("2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3")
PER_LARGE_QUARTER = 250
SMALL_PER_YEAR = 60
SMALL_YEAR = "2025"
LARGE_BUDGET = Decimal("2.5")  # a year, per large program, for what the advisor plans
SMALL_BUDGET = Decimal(1)
# The network's two other members: one program each, answers in 2025 only.
MEMBERS = (
    ("north-refuge", "North Refuge", "outreach", "Outreach Program"),
    ("south-haven", "South Haven", "housing", "Housing Program"),
)
MEMBER_PROGRAMS = {program for _, _, program, _ in MEMBERS}
PER_MEMBER_QUARTER = 120
NETWORK = ("coalition", "Anti-Trafficking Coalition")
# Beside the advisor's plan, the large programs release the indices by gender and by time in
# program once a year (epsilon 1 each): 2 x (2.5 + 2) + 1 = 10, the demo's yearly budget.
BREAKDOWNS = (("gender", Decimal(1)), ("time_in_program", Decimal(1)))


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


def _seeded(slug: str) -> list[tuple[Period, int]]:
    """The periods a program's synthetic answers fall in, and how many each."""
    if slug in MEMBER_PROGRAMS:
        return [(Period.parse(f"{SMALL_YEAR}-Q{q}"), PER_MEMBER_QUARTER) for q in range(1, 5)]
    if slug == SMALL:
        return [(Period.parse(SMALL_YEAR), SMALL_PER_YEAR)]
    return [(Period.parse(p), PER_LARGE_QUARTER) for p in LARGE_PERIODS]


async def seed_submissions(conn: Connection, organisation_id: uuid.UUID) -> None:
    """Once per demo database: synthetic sealed submissions for each program and period."""
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM submissions WHERE organisation_id = $1)", organisation_id
    ):
        return
    key = await conn.fetchrow(
        "SELECT public_key FROM collection_keys "
        "WHERE organisation_id = $1 AND retired_week IS NULL",
        organisation_id,
    )
    survey_row = await _survey_row(conn, organisation_id)
    programs = await conn.fetch(
        "SELECT id, slug FROM programs WHERE organisation_id = $1 ORDER BY slug DESC",
        organisation_id,
    )
    if key is None:
        raise FeedbackError("the demo organisation has no collection key")
    survey, recipient = from_json(survey_row["definition"]), load_public_key(key["public_key"])
    rng = random.Random(2026)  # noqa: S311 - synthetic demo data, not secrets
    rows = []
    for program_index, program in enumerate(programs):
        for period, count in _seeded(program["slug"]):
            first, last = period.weeks()
            weeks = (last - first).days // 7
            for _ in range(count):
                answers = _answers(rng, survey, program_index)
                envelope = Envelope(survey.slug, survey.version, rng.choice(["en", "es"]), answers)
                week = first + dt.timedelta(weeks=rng.randrange(weeks))
                rows.append(
                    (
                        organisation_id,
                        program["id"],
                        survey_row["id"],
                        rng.choice(["web", "web", "web_nojs"]),
                        week,
                        seal(recipient, envelope.to_plaintext()),
                    )
                )
    await conn.executemany(
        """
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel,
                                 received_week, ciphertext)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        rows,
    )


async def release_past_periods(
    conn: Connection, organisation_id: uuid.UUID, passphrase: str, *, only_first_year: bool = False
) -> int:
    """Plan the demo's years (once) and make the releases of every period that has ended.
    Already-made releases are returned, not remade."""
    today = dt.datetime.now(dt.UTC).date()
    work = []
    years = sorted({Period.parse(p).budget_year for p in (*LARGE_PERIODS, SMALL_YEAR)})
    for year in years[:1] if only_first_year else years:
        lines = await plan_of(conn, organisation_id, year)
        if not lines:
            await _plan(conn, organisation_id, year)
            lines = await plan_of(conn, organisation_id, year)
        work += [(line, period) for line in lines for period in line.due(today)]
    keys = await unlock_all(conn, organisation_id, passphrase)
    made = await make_planned(conn, work, keys=keys, database_url=None)
    return sum(item.release is not None and item.release.created for item in made)


async def _plan(conn: Connection, organisation_id: uuid.UUID, year: int) -> None:
    """What the plan advisor recommends for each program's expected respondents (the small
    program's only in the year it has answers), and the large programs' yearly indices by
    gender and by time in program."""
    survey_row = await _survey_row(conn, organisation_id)
    survey = from_json(survey_row["definition"])
    programs = await conn.fetch(
        "SELECT id, slug FROM programs WHERE organisation_id = $1", organisation_id
    )
    for program in programs:
        small = program["slug"] == SMALL
        if small and year != Period.parse(SMALL_YEAR).budget_year:
            continue
        advice = advise(
            survey,
            SMALL_PER_YEAR if small else 4 * PER_LARGE_QUARTER,
            SMALL_BUDGET if small else LARGE_BUDGET,
        )
        tables: list[tuple[str, Granularity, tuple[str, ...], str | None, Decimal, int]] = [
            (line.kind, line.granularity, line.questions, None, line.epsilon, line.expected_n)
            for line in advice.lines
        ]
        if program["slug"] in MEMBER_PROGRAMS:  # the network's other members: the year's indices
            tables = [("indices", "year", (), None, SMALL_BUDGET, 4 * PER_MEMBER_QUARTER)]
        elif not small:
            n = 4 * PER_LARGE_QUARTER
            tables += [("indices", "year", (), by, eps, n) for by, eps in BREAKDOWNS]
        for kind, granularity, questions, breakdown, epsilon, expected_n in tables:
            await add_line(
                conn,
                organisation_id=organisation_id,
                year=year,
                program_id=program["id"],
                survey_id=survey_row["id"],
                granularity=granularity,
                questions=questions,
                breakdown=breakdown,
                epsilon=epsilon,
                expected_n=expected_n if kind == "indices" else None,
            )


SERIES = "yearly"


async def publish_year(
    conn: Connection, organisation_id: uuid.UUID, passphrase: str, folder: Path
) -> tuple[Path, str]:
    """The demo's yearly series (published on 15 January) and its publication of the year every
    program has releases of, exported as a folder; returns it and the public signing key."""
    try:
        schedule = await schedule_of(conn, organisation_id, SERIES)
    except FeedbackError:
        schedule = await add_schedule(conn, organisation_id, SERIES, "year", 15, None)
    period = Period.parse(SMALL_YEAR)
    made = await publish(
        conn, schedule, period, passphrase=passphrase, issued=dt.datetime.now(dt.UTC).date()
    )
    target = folder / f"{SERIES}-{made.sequence}"
    if not target.exists():
        packed = await conn.fetchval("SELECT archive FROM publications WHERE id = $1", made.id)
        export(packed, target)
    return target, await public_key_file(conn, organisation_id)


async def public_key_file(conn: Connection, organisation_id: uuid.UUID) -> str:
    """The organisation's current signing key in minisign's format, as funders are given it."""
    row = await conn.fetchrow(
        "SELECT o.slug, k.public_key FROM organisations o JOIN signing_keys k "
        "ON k.organisation_id = o.id AND k.retired_week IS NULL WHERE o.id = $1",
        organisation_id,
    )
    if row is None:
        raise FeedbackError("a demo organisation has no signing key")
    key = PublicKey.of(row["public_key"])
    return key.file(f"{row['slug']} signing key {key.hex_id}")


async def add_default_survey(conn: Connection, organisation_id: uuid.UUID) -> None:
    """The default survey, once."""
    definition = load_definition()
    await conn.execute(
        "INSERT INTO surveys (organisation_id, slug, version, definition) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (organisation_id, slug, version) DO NOTHING",
        organisation_id,
        definition["slug"],
        definition["version"],
        definition,
    )


async def seed_member(
    conn: Connection, slug: str, name: str, program: tuple[str, str], passphrase: str, cost: KdfCost
) -> uuid.UUID:
    """Another organisation of the network, once: its program, survey, keys, answers and 2025
    releases."""
    async with conn.transaction():
        organisation_id: uuid.UUID = await conn.fetchval(
            """
            INSERT INTO organisations (slug, name, epsilon_per_year) VALUES ($1, $2, 10)
            ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id
            """,
            slug,
            name,
        )
        await conn.execute(
            "INSERT INTO programs (organisation_id, slug, name) VALUES ($1, $2, $3) "
            "ON CONFLICT (organisation_id, slug) DO NOTHING",
            organisation_id,
            *program,
        )
        await add_default_survey(conn, organisation_id)
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE organisation_id = $1)",
            organisation_id,
        ):
            await create_collection_key(
                conn, organisation_id=organisation_id, passphrase=passphrase, cost=cost
            )
            await create_signing_key(
                conn, organisation_id=organisation_id, passphrase=passphrase, cost=cost
            )
    await seed_submissions(conn, organisation_id)
    await release_past_periods(conn, organisation_id, passphrase, only_first_year=True)
    return organisation_id


async def seed_network(
    conn: Connection, members: list[tuple[uuid.UUID, Path]], passphrase: str, folder: Path,
    cost: KdfCost,
) -> tuple[Path, str]:  # fmt: skip
    """The coalition of the demo and its two other members, and its signed summary of 2025
    from their yearly publications (``members``: each one's id and exported bundle)."""
    threshold = await conn.fetchval(
        "SELECT release_threshold FROM organisations WHERE id = $1", members[0][0]
    )
    network_id = await conn.fetchval(
        "SELECT id FROM organisations WHERE slug = $1", NETWORK[0]
    ) or await create_network(
        conn, *NETWORK, Requirements("invitation", threshold), passphrase,
        cost=cost,
    )  # fmt: skip
    for organisation_id, bundle in members:
        row = await conn.fetchrow(
            "SELECT o.slug, o.name, k.public_key FROM organisations o "
            "JOIN signing_keys k ON k.organisation_id = o.id AND k.retired_week IS NULL "
            "WHERE o.id = $1",
            organisation_id,
        )
        if row is None:
            raise FeedbackError("a demo member has no signing key")
        key = PublicKey.of(row["public_key"])
        await add_member(conn, network_id, row["slug"], row["name"], key, consents=True)
        await import_bundle(conn, network_id, bundle)
    publication_id, sequence = await summarise_network(
        conn, network_id, Period.parse(SMALL_YEAR), passphrase, dt.datetime.now(dt.UTC).date()
    )
    target = folder / f"network-{sequence}"
    if not target.exists():
        packed = await conn.fetchval(
            "SELECT archive FROM publications WHERE id = $1", publication_id
        )
        export(packed, target)
    return target, await public_key_file(conn, network_id)
