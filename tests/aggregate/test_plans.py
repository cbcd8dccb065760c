"""Release plans, the yearly budget per survivor, scheduled releases and plan-based retention."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedback.aggregate.jobs import delete_released_ciphertexts
from feedback.aggregate.keys import UnlockedKey, create_collection_key
from feedback.aggregate.privacy import Tally
from feedback.aggregate.releases import BudgetExceeded, Scope, make_release
from feedback.aggregate.scheduled import due, make_planned, scheduled_releases_job
from feedback.budget import year_budget
from feedback.cells import Layout
from feedback.db import Connection, Pool
from feedback.envelope import Envelope
from feedback.jobs import run_once
from feedback.periods import Period
from feedback.plans import PlanError, PlanLine, add_line, plan_of, remove_line
from feedback.sealing import load_public_key, seal
from feedback.surveys import load_survey
from tests import factories

SURVEY = load_survey()
QUESTIONS = ["believed", "safe_now"]
PASSPHRASE = "lantern quietly orbit mossy teapot"


async def second_program(conn: Connection, t: factories.Tenant) -> uuid.UUID:
    program_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO programs (organisation_id, slug, name) VALUES ($1, 'outreach', 'Outreach') "
        "RETURNING id",
        t.organisation_id,
    )
    return program_id


async def plan(
    conn: Connection,
    t: factories.Tenant,
    *,
    program_id: uuid.UUID | None,
    epsilon: str = "1",
    granularity: Any = "quarter",
    breakdown: str | None = None,
    year: int = 2026,
) -> PlanLine:
    return await add_line(
        conn,
        organisation_id=t.organisation_id,
        year=year,
        program_id=program_id,
        survey_id=t.survey_id,
        granularity=granularity,
        questions=QUESTIONS,
        breakdown=breakdown,
        epsilon=Decimal(epsilon),
    )


def fixed_count(layout: Layout, respondents: int = 40) -> Any:
    async def count() -> tuple[Tally, dict[str, Any]]:
        tally = Tally(layout)
        for i in range(respondents):
            tally.add({"believed": 1 + i % 5})
        return tally, {}

    return count


async def release_of(conn: Connection, line: PlanLine, period: str) -> None:
    scope = Scope(
        line.organisation_id, line.program_id, line.survey_id, Period.parse(period), line.breakdown
    )
    await make_release(
        conn,
        scope,
        layout=line.layout,
        epsilon=float(line.epsilon),
        threshold=11,
        count=fixed_count(line.layout),
    )


async def test_a_plan_line_is_refused_past_the_budget_with_what_is_left(conn: Connection) -> None:
    t = await factories.tenant(conn)  # default budget: 4 a year
    line = await plan(conn, t, program_id=t.program_id, epsilon="0.75")
    assert line.cost == Decimal("3.00")
    assert [str(p) for p in line.periods()] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    with pytest.raises(PlanError, match=r"only 1\.00 of the yearly budget of 4\.0 is left"):
        await plan(conn, t, program_id=t.program_id, granularity="month", epsilon="0.1")
    with pytest.raises(PlanError, match="already has this table"):
        await plan(conn, t, program_id=t.program_id, epsilon="0.1")
    await plan(conn, t, program_id=t.program_id, breakdown="gender", epsilon="0.25")
    budget = await year_budget(conn, t.organisation_id, 2026)
    assert (budget.planned, budget.spent, budget.left) == (Decimal("4.00"), Decimal(0), Decimal(0))
    assert len(await plan_of(conn, t.organisation_id, 2026)) == 2
    assert await plan_of(conn, t.organisation_id, 2027) == []


async def test_programs_cover_different_survivors_so_their_plans_do_not_add_up(
    conn: Connection,
) -> None:
    t = await factories.tenant(conn)
    other = await second_program(conn, t)
    await plan(conn, t, program_id=t.program_id, epsilon="0.75")  # 3 a year
    await plan(conn, t, program_id=other, epsilon="0.75")  # 3 more, for other survivors
    assert (await year_budget(conn, t.organisation_id, 2026)).planned == Decimal("3.00")
    # An organisation-wide table covers everyone: it counts against both programs.
    with pytest.raises(PlanError, match="budget"):
        await plan(conn, t, program_id=None, granularity="year", epsilon="1.5")
    await plan(conn, t, program_id=None, granularity="year", epsilon="1")
    assert (await year_budget(conn, t.organisation_id, 2026)).planned == Decimal("4.00")


async def test_releases_spend_per_survivor_under_the_lock(conn: Connection) -> None:
    t = await factories.tenant(conn)
    other = await second_program(conn, t)
    mine = await plan(conn, t, program_id=t.program_id, epsilon="1")
    theirs = await plan(conn, t, program_id=other, epsilon="1")
    await conn.execute("UPDATE organisations SET epsilon_per_year = 2")  # lowered since
    await release_of(conn, mine, "2026-Q1")
    await release_of(conn, mine, "2026-Q2")
    await release_of(conn, theirs, "2026-Q1")  # other survivors: their own budget
    with pytest.raises(BudgetExceeded, match=r"only 0\.0 of the 2026 budget of 2 is left"):
        await release_of(conn, mine, "2026-Q3")
    budget = await year_budget(conn, t.organisation_id, 2026)
    assert budget.spent == Decimal("2.0")
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 3


async def test_a_budget_of_zero_releases_nothing(conn: Connection) -> None:
    t = await factories.tenant(conn)
    line = await plan(conn, t, program_id=t.program_id, epsilon="1")
    await conn.execute("UPDATE organisations SET epsilon_per_year = 0")
    with pytest.raises(BudgetExceeded, match="only 0 of the 2026 budget of 0 is left"):
        await release_of(conn, line, "2026-Q1")
    with pytest.raises(PlanError, match="only 0 of the yearly budget of 0"):
        await plan(conn, t, program_id=t.program_id, breakdown="gender")
    assert await conn.fetchval("SELECT count(*) FROM releases") == 0


async def test_bad_plan_lines_are_refused(conn: Connection) -> None:
    t = await factories.tenant(conn)
    for questions, breakdown, message in (
        (["no_such_question"], None, "not a question"),
        (["comment"], None, "free text is never released"),
        (["believed"], "housing", "not a single-choice question"),
    ):
        with pytest.raises(PlanError, match=message):
            await add_line(
                conn,
                organisation_id=t.organisation_id,
                year=2026,
                program_id=t.program_id,
                survey_id=t.survey_id,
                granularity="quarter",
                questions=questions,
                breakdown=breakdown,
                epsilon=Decimal(1),
            )
    with pytest.raises(PlanError, match="more than 0"):
        await plan(conn, t, program_id=t.program_id, epsilon="0")
    assert await plan_of(conn, t.organisation_id, 2026) == []


async def test_a_line_goes_only_while_none_of_its_releases_is_made(conn: Connection) -> None:
    t = await factories.tenant(conn)
    kept = await plan(conn, t, program_id=t.program_id, epsilon="0.5")
    gone = await plan(conn, t, program_id=t.program_id, breakdown="gender", epsilon="0.5")
    await remove_line(conn, t.organisation_id, gone.id)
    await release_of(conn, kept, "2026-Q2")
    with pytest.raises(PlanError, match="2026-Q2 has been made from this line"):
        await remove_line(conn, t.organisation_id, kept.id)
    assert [line.id for line in await plan_of(conn, t.organisation_id, 2026)] == [kept.id]


async def test_due_releases_are_the_ended_periods_not_yet_made(conn: Connection) -> None:
    t = await factories.tenant(conn)
    line = await plan(conn, t, program_id=t.program_id)
    await release_of(conn, line, "2026-Q1")
    work = await due(conn, t.organisation_id, dt.date(2026, 11, 24))
    assert [str(period) for _, period in work] == ["2026-Q2", "2026-Q3"]
    # A quarter's last week ends after the quarter when the quarter does not end on a Sunday.
    assert [str(p) for _, p in await due(conn, t.organisation_id, dt.date(2026, 10, 1))] == [
        "2026-Q2"
    ]


async def test_an_empty_period_is_released_like_any_other(
    conn: Connection, database_url: str
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    line = await plan(conn, t, program_id=t.program_id)
    key = await _unlocked(keyed)
    [made] = await make_planned(
        conn, [(line, Period.parse("2026-Q1"))], keys=key, database_url=database_url
    )
    assert made.release is not None
    assert made.release.created
    [group] = made.release.cells["groups"]
    # Noise and all: an exact "none" would disclose something; suppressed almost surely.
    assert group["n"] == "S" or isinstance(group["n"], int)
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 1


async def _unlocked(keyed: factories.KeyedTenant) -> dict[uuid.UUID, UnlockedKey]:
    return {keyed.tenant.key_id: UnlockedKey(keyed.tenant.key_id, keyed.private_key)}


async def test_the_worker_makes_due_releases_with_the_passphrase_file(
    pool: Pool, database_url: str, tmp_path: Path
) -> None:
    async with pool.acquire() as conn:
        t = await factories.tenant(conn)
        key_id = await create_collection_key(
            conn, organisation_id=t.organisation_id, passphrase=PASSPHRASE, retire_current=True
        )
        public_key = load_public_key(
            await conn.fetchval("SELECT public_key FROM collection_keys WHERE id = $1", key_id)
        )
        for i in range(30):
            envelope = Envelope("rights-based", 1, "en", {"believed": 1 + i % 5, "safe_now": 5})
            await factories.submission(
                conn,
                t,
                key_id=key_id,
                week=dt.date(2026, 8, 3),
                ciphertext=seal(public_key, envelope.to_plaintext()),
            )
        await plan(conn, t, program_id=t.program_id)
    passphrases = tmp_path / "passphrases"
    passphrases.mkdir()
    job = scheduled_releases_job(passphrases, database_url)
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)

    assert await run_once(pool, job, now)
    async with pool.acquire() as conn:
        outcome = await conn.fetchval("SELECT outcome FROM job_runs")
        assert "org: 3 due, but no passphrase file" in outcome
        assert await conn.fetchval("SELECT count(*) FROM releases") == 0

    secret = passphrases / "org"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    assert await run_once(pool, job, now + dt.timedelta(hours=1))
    assert not await run_once(pool, job, now + dt.timedelta(hours=1))  # once per period
    async with pool.acquire() as conn:
        periods = await conn.fetch("SELECT period_start FROM releases ORDER BY period_start")
        assert [r["period_start"] for r in periods] == [
            dt.date(2026, 1, 1),
            dt.date(2026, 4, 1),
            dt.date(2026, 7, 1),
        ]
        q3 = await conn.fetchval("SELECT metadata FROM releases WHERE period_start = '2026-07-01'")
        assert q3["quarantined"] == 0  # all 30 opened with the unlocked key
        assert await conn.fetchval("SELECT bool_and(included_in_release) FROM submissions")
        assert "org: 3 made, 0 refused" in await conn.fetchval(
            "SELECT outcome FROM job_runs ORDER BY period DESC LIMIT 1"
        )
    # Nothing left to do: the next run unlocks nothing.
    assert await run_once(pool, job, now + dt.timedelta(hours=2))
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT outcome FROM job_runs ORDER BY period DESC LIMIT 1")
            == "nothing due"
        )


async def test_ciphertexts_go_once_their_scheduled_releases_are_made_and_grace_passed(
    conn: Connection,
) -> None:
    t = await factories.tenant(conn)
    overall = await plan(conn, t, program_id=t.program_id, epsilon="0.5")
    by_gender = await plan(conn, t, program_id=t.program_id, breakdown="gender", epsilon="0.5")
    q2, q3 = dt.date(2026, 5, 4), dt.date(2026, 8, 3)
    for week in (q2, q3, q3):
        await factories.submission(conn, t, week=week, ciphertext=os.urandom(1072))
    await conn.execute("UPDATE organisations SET retention_grace_days = 0")

    await release_of(conn, overall, "2026-Q3")
    assert (await delete_released_ciphertexts(conn)).startswith("deleted 0 ")  # gender Q3 due
    await release_of(conn, by_gender, "2026-Q3")
    await conn.execute("UPDATE organisations SET retention_grace_days = 30")
    assert (await delete_released_ciphertexts(conn)).startswith("deleted 0 ")  # in grace
    await conn.execute("UPDATE organisations SET retention_grace_days = 0")
    assert (await delete_released_ciphertexts(conn)).startswith("deleted 2 ")
    assert [r["received_week"] for r in await conn.fetch("SELECT * FROM submissions")] == [q2]
