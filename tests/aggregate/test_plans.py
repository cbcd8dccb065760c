"""Release plans, the yearly budget per survivor, scheduled releases and plan-based retention."""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedback.aggregate.jobs import delete_released_ciphertexts
from feedback.aggregate.keys import UnlockedKey, create_collection_key
from feedback.aggregate.privacy import Counted, Tally
from feedback.aggregate.releases import BudgetExceeded, Scope, make_release
from feedback.aggregate.scheduled import due, make_planned, scheduled_releases_job
from feedback.aggregate.unseal import KeysMissing, counter
from feedback.db import SURVIVOR, Connection, Pool, connect
from feedback.envelope import Envelope
from feedback.jobs import run_once
from feedback.publish.invitations import create_open_link
from feedback.sealing import load_public_key, seal
from feedback.stats.budget import year_budget
from feedback.stats.cells import Layout
from feedback.stats.periods import Period
from feedback.stats.plans import PlanError, PlanLine, add_line, declare_groups, plan_of, remove_line
from feedback.surveys import FIRST_VERSION, load_survey
from feedback.tokens import hash_token
from feedback.wrapping import INSECURE_TEST
from tests import factories

SURVEY = load_survey(FIRST_VERSION)
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
    async def count() -> tuple[Counted, dict[str, Any]]:
        tally = Tally(layout)
        for i in range(respondents):
            tally.add({"believed": 1 + i % 5})
        return Counted(tally, respondents, 0), {}

    return count


async def release_of(conn: Connection, line: PlanLine, period: str) -> None:
    scope = Scope(
        line.organisation_id, line.program_id, line.survey_id, Period.parse(period), line.breakdown
    )
    await make_release(
        conn,
        scope,
        layout=line.layout,
        epsilon=line.epsilon,
        threshold=11,
        count=fixed_count(line.layout),
    )


async def test_a_plan_line_is_refused_past_the_budget_with_what_is_left(
    conn: Connection, worker_conn: Connection
) -> None:
    t = await factories.tenant(conn)  # default budget: 4 a year
    line = await plan(worker_conn, t, program_id=t.program_id, epsilon="0.75")
    assert line.cost == Decimal("3.00")
    assert [str(p) for p in line.periods()] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    with pytest.raises(PlanError, match=r"only 1\.00 of the yearly budget of 4\.0 is left"):
        await plan(worker_conn, t, program_id=t.program_id, granularity="month", epsilon="0.1")
    with pytest.raises(PlanError, match="already has this table"):
        await plan(worker_conn, t, program_id=t.program_id, epsilon="0.1")
    with pytest.raises(PlanError, match="at most six decimal places"):
        await plan(worker_conn, t, program_id=t.program_id, epsilon="0.0000001")
    await plan(worker_conn, t, program_id=t.program_id, breakdown="gender", epsilon="0.25")
    budget = await year_budget(worker_conn, t.organisation_id, 2026)
    assert (budget.planned, budget.spent, budget.left) == (Decimal("4.00"), Decimal(0), Decimal(0))
    assert len(await plan_of(worker_conn, t.organisation_id, 2026)) == 2
    assert await plan_of(worker_conn, t.organisation_id, 2027) == []


async def test_by_default_every_program_s_releases_count_against_every_survivor(
    conn: Connection, worker_conn: Connection
) -> None:
    """A survivor may be served by the shelter and by outreach: both programs' releases are
    about them, so their losses add up under the one organisation budget."""
    t = await factories.tenant(conn)
    other = await second_program(conn, t)
    await plan(worker_conn, t, program_id=t.program_id, epsilon="0.75")  # 3 a year
    with pytest.raises(PlanError, match=r"only 1\.00 of the yearly budget of 4\.0 is left"):
        await plan(worker_conn, t, program_id=other, epsilon="0.75")
    await plan(worker_conn, t, program_id=other, epsilon="0.25")
    budget = await year_budget(worker_conn, t.organisation_id, 2026)
    assert budget.planned == Decimal("4.00")
    assert "every release of the organisation counts against every survivor" in budget.accounting


async def test_programs_declared_to_serve_different_people_compose_in_parallel(
    conn: Connection, worker_conn: Connection
) -> None:
    t = await factories.tenant(conn)
    other = await second_program(conn, t)
    await declare_groups(
        worker_conn, t.organisation_id, {"housing": ["shelter"], "street": ["outreach"]}
    )
    await plan(worker_conn, t, program_id=t.program_id, epsilon="0.75")  # 3 a year
    await plan(worker_conn, t, program_id=other, epsilon="0.75")  # 3 more, other survivors
    budget = await year_budget(worker_conn, t.organisation_id, 2026)
    assert budget.planned == Decimal("3.00")
    assert "housing: shelter; street: outreach" in budget.accounting
    # An organisation-wide table covers everyone: it counts against both groups.
    with pytest.raises(PlanError, match="budget"):
        await plan(worker_conn, t, program_id=None, granularity="year", epsilon="1.5")
    await plan(worker_conn, t, program_id=None, granularity="year", epsilon="1")
    assert (await year_budget(worker_conn, t.organisation_id, 2026)).planned == Decimal("4.00")
    # A program in no group may serve anyone: it counts against every group.
    third = await conn.fetchval(
        "INSERT INTO programs (organisation_id, slug, name) VALUES ($1, 'legal', 'Legal') "
        "RETURNING id",
        t.organisation_id,
    )
    with pytest.raises(PlanError, match="budget"):
        await plan(worker_conn, t, program_id=third, granularity="year", epsilon="0.5")
    [audited] = await conn.fetch("SELECT details FROM audit_log WHERE action = 'privacy.groups'")
    assert audited["details"]["groups"] == {"housing": ["shelter"], "street": ["outreach"]}
    # Back to the default: the plan now spends 3 + 3 + 1 for a survivor of both programs.
    await declare_groups(worker_conn, t.organisation_id, {})
    assert (await year_budget(worker_conn, t.organisation_id, 2026)).planned == Decimal("7.00")
    with pytest.raises(PlanError, match="two groups"):
        await declare_groups(worker_conn, t.organisation_id, {"a": ["shelter"], "b": ["shelter"]})
    with pytest.raises(PlanError, match="no program 'nowhere'"):
        await declare_groups(worker_conn, t.organisation_id, {"a": ["nowhere"]})


async def test_a_survivor_invited_by_two_programs_is_bounded_by_the_organisation_budget(
    conn: Connection, worker_conn: Connection
) -> None:
    for declared in (False, True):
        t = await factories.tenant(conn, f"org-{declared}".lower())
        other = await second_program(conn, t)
        if declared:  # before any release: each program's survivors are its own
            await declare_groups(
                worker_conn, t.organisation_id, {"a": ["shelter"], "b": ["outreach"]}
            )
        await conn.execute(
            "UPDATE organisations SET epsilon_per_year = 10 WHERE id = $1", t.organisation_id
        )
        mine = await plan(worker_conn, t, program_id=t.program_id, epsilon="1")
        theirs = await plan(worker_conn, t, program_id=other, epsilon="1")  # 8 of 10 planned
        await conn.execute(
            "UPDATE organisations SET epsilon_per_year = 2 WHERE id = $1", t.organisation_id
        )  # lowered since
        await release_of(worker_conn, mine, "2026-Q1")
        await release_of(worker_conn, theirs, "2026-Q1")  # by default, about the same people
        if not declared:
            with pytest.raises(BudgetExceeded, match=r"only 0\.000000 of the 2026 budget of 2"):
                await release_of(worker_conn, mine, "2026-Q2")
            assert (await year_budget(worker_conn, t.organisation_id, 2026)).spent == 2
            # Once counted against everyone, a program cannot be declared apart this year.
            with pytest.raises(PlanError, match="'shelter' has releases counted in no group"):
                await declare_groups(worker_conn, t.organisation_id, {"a": ["shelter"]})
            continue
        # Declared disjoint, each program's survivors have lost 1 of 2: one more each.
        await release_of(worker_conn, mine, "2026-Q2")
        await release_of(worker_conn, theirs, "2026-Q2")
        with pytest.raises(BudgetExceeded):
            await release_of(worker_conn, theirs, "2026-Q3")
        [release] = await conn.fetch(
            "SELECT metadata FROM releases WHERE period_start = '2026-04-01' AND program_id = $1",
            t.program_id,
        )
        assert "groups of programs declared" in release["metadata"]["composition"]
        # Its releases counted in one group, a program cannot move to another this year (its
        # spending would count for other survivors), only to no group.
        with pytest.raises(PlanError, match="'shelter' has releases counted in group 'a'"):
            await declare_groups(worker_conn, t.organisation_id, {"b": ["shelter", "outreach"]})
        await declare_groups(worker_conn, t.organisation_id, {"b": ["outreach"]})


async def test_a_budget_of_zero_releases_nothing(conn: Connection, worker_conn: Connection) -> None:
    t = await factories.tenant(conn)
    line = await plan(worker_conn, t, program_id=t.program_id, epsilon="1")
    await conn.execute("UPDATE organisations SET epsilon_per_year = 0")
    with pytest.raises(BudgetExceeded, match="only 0 of the 2026 budget of 0 is left"):
        await release_of(worker_conn, line, "2026-Q1")
    with pytest.raises(PlanError, match="only 0 of the yearly budget of 0"):
        await plan(worker_conn, t, program_id=t.program_id, breakdown="gender")
    assert await conn.fetchval("SELECT count(*) FROM releases") == 0


async def test_bad_plan_lines_are_refused(conn: Connection, worker_conn: Connection) -> None:
    t = await factories.tenant(conn)
    for questions, breakdown, message in (
        (["no_such_question"], None, "not a question"),
        (["comment"], None, "comments are off for this organisation"),
        (["believed"], "housing", "not a single-choice question"),
    ):
        with pytest.raises(PlanError, match=message):
            await add_line(
                worker_conn,
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
        await plan(worker_conn, t, program_id=t.program_id, epsilon="0")
    assert await plan_of(worker_conn, t.organisation_id, 2026) == []


async def test_a_line_goes_only_while_none_of_its_releases_is_made(
    conn: Connection, worker_conn: Connection
) -> None:
    t = await factories.tenant(conn)
    kept = await plan(worker_conn, t, program_id=t.program_id, epsilon="0.5")
    gone = await plan(worker_conn, t, program_id=t.program_id, breakdown="gender", epsilon="0.5")
    await remove_line(worker_conn, t.organisation_id, gone.id)
    await release_of(worker_conn, kept, "2026-Q2")
    with pytest.raises(PlanError, match="2026-Q2 has been made from this line"):
        await remove_line(worker_conn, t.organisation_id, kept.id)
    assert [line.id for line in await plan_of(worker_conn, t.organisation_id, 2026)] == [kept.id]


async def test_due_releases_are_the_ended_periods_not_yet_made(
    conn: Connection, worker_conn: Connection
) -> None:
    t = await factories.tenant(conn)
    line = await plan(worker_conn, t, program_id=t.program_id)
    await release_of(worker_conn, line, "2026-Q1")
    work = await due(conn, t.organisation_id, dt.date(2026, 11, 24))
    assert [str(period) for _, period in work] == ["2026-Q2", "2026-Q3"]
    # A quarter's last week ends after the quarter when the quarter does not end on a Sunday.
    assert [str(p) for _, p in await due(conn, t.organisation_id, dt.date(2026, 10, 1))] == [
        "2026-Q2"
    ]


async def test_an_empty_period_is_released_like_any_other(
    conn: Connection, worker_conn: Connection, database_url: str
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    line = await plan(worker_conn, t, program_id=t.program_id)
    key = await _unlocked(keyed)
    [made] = await make_planned(
        worker_conn, [(line, Period.parse("2026-Q1"))], keys=key, database_url=database_url
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
    pool: Pool, worker_pool: Pool, database_url: str, tmp_path: Path
) -> None:
    async with pool.acquire() as conn:
        t = await factories.tenant(conn)
        key_id = await create_collection_key(
            conn,
            organisation_id=t.organisation_id,
            passphrase=PASSPHRASE,
            retire_current=True,
            cost=INSECURE_TEST,
        )
        public_key = load_public_key(
            await conn.fetchval("SELECT public_key FROM collection_keys WHERE id = $1", key_id)
        )
        for i in range(30):
            envelope = Envelope("rights-based", 1, "en", {"believed": 1 + i % 5, "safe_now": 5})
            await factories.submission(
                conn,
                t,
                week=dt.date(2026, 8, 3),
                ciphertext=seal(public_key, envelope.to_plaintext()),
            )
        await plan(conn, t, program_id=t.program_id)
    passphrases = tmp_path / "passphrases"
    passphrases.mkdir()
    job = scheduled_releases_job(passphrases, database_url)
    assert await run_once(worker_pool, job)
    async with pool.acquire() as conn:
        outcome = await conn.fetchval("SELECT outcome FROM job_runs")
        assert "org: 3 due, but no passphrase file" in outcome
        assert await conn.fetchval("SELECT count(*) FROM releases") == 0

    secret = passphrases / "org"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    assert await run_once(worker_pool, job)
    async with pool.acquire() as conn:
        periods = await conn.fetch("SELECT period_start FROM releases ORDER BY period_start")
        assert [r["period_start"] for r in periods] == [
            dt.date(2026, 1, 1),
            dt.date(2026, 4, 1),
            dt.date(2026, 7, 1),
        ]
        q3 = await conn.fetchval("SELECT metadata FROM releases WHERE period_start = '2026-07-01'")
        # Definitions only: no quarantine count, no channel mix (exact numbers).
        assert set(q3) == {"privacy_unit", "note", "composition"}
        assert await conn.fetchval("SELECT bool_and(included_in_release) FROM submissions")
        assert "org: 3 made, 0 refused" in await conn.fetchval("SELECT outcome FROM job_runs")
    # Nothing left to do: the next run unlocks nothing.
    assert await run_once(worker_pool, job)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT outcome FROM job_runs") == "nothing due"


async def test_ciphertexts_go_once_their_scheduled_releases_are_made_and_grace_passed(
    conn: Connection, worker_conn: Connection
) -> None:
    t = await factories.tenant(conn)
    overall = await plan(worker_conn, t, program_id=t.program_id, epsilon="0.5")
    by_gender = await plan(
        worker_conn, t, program_id=t.program_id, breakdown="gender", epsilon="0.5"
    )
    q2, q3 = dt.date(2026, 5, 4), dt.date(2026, 8, 3)
    for week in (q2, q3, q3):
        await factories.submission(conn, t, week=week, ciphertext=os.urandom(1072))
    await conn.execute("UPDATE organisations SET retention_grace_days = 0")

    async def left() -> list[dt.date]:
        outcome = await delete_released_ciphertexts(worker_conn)
        assert not re.search(r"\d", outcome)  # how many went would be an exact count
        rows = await conn.fetch("SELECT received_week FROM submissions ORDER BY received_week")
        return [r["received_week"] for r in rows]

    await release_of(worker_conn, overall, "2026-Q3")
    assert await left() == [q2, q3, q3]  # the gender table of Q3 is still due
    await release_of(worker_conn, by_gender, "2026-Q3")
    await conn.execute("UPDATE organisations SET retention_grace_days = 30")
    assert await left() == [q2, q3, q3]  # in grace
    await conn.execute("UPDATE organisations SET retention_grace_days = 0")
    assert await left() == [q2]


async def test_a_half_yearly_line_costs_two_releases_and_keeps_each_half_until_it_is_made(
    conn: Connection, worker_conn: Connection
) -> None:
    t = await factories.tenant(conn)
    line = await plan(worker_conn, t, program_id=t.program_id, granularity="half", epsilon="0.5")
    assert [str(p) for p in line.periods()] == ["2026-H1", "2026-H2"]
    assert (await year_budget(worker_conn, t.organisation_id, 2026)).planned == Decimal("1.0")
    assert "2026 half-yearly" in line.describe()
    assert [str(p) for _, p in await due(conn, t.organisation_id, dt.date(2026, 11, 24))] == [
        "2026-H1"
    ]
    # The first week of July counts in the second half; the last of June in the first.
    first, second = dt.date(2026, 6, 29), dt.date(2026, 7, 6)
    for week in (first, second):
        await factories.submission(conn, t, week=week, ciphertext=os.urandom(1072))
    await conn.execute("UPDATE organisations SET retention_grace_days = 0")
    await release_of(worker_conn, line, "2026-H1")
    await delete_released_ciphertexts(worker_conn)
    rows = await conn.fetch("SELECT received_week FROM submissions")
    assert [r["received_week"] for r in rows] == [second]


async def test_an_answer_arriving_while_a_period_is_counted_stays_withdrawable(
    conn: Connection, worker_conn: Connection, database_url: str
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    line = await plan(worker_conn, t, program_id=t.program_id)
    for i in range(3):
        envelope = Envelope("rights-based", 1, "en", {"believed": 1 + i})
        await factories.submission(
            conn,
            t,
            week=dt.date(2026, 8, 3),
            ciphertext=seal(keyed.private_key.public_key, envelope.to_plaintext()),
        )
    scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q3"))
    real = counter(worker_conn, scope, layout=line.layout, keys=await _unlocked(keyed))
    receipt = os.urandom(32)
    poster = await create_open_link(conn, program_id=t.program_id)

    async def count_while_one_arrives() -> Any:
        counted = await real()
        survivor = await connect(database_url, role=SURVIVOR)
        try:  # as the survivor app stores one: the week is the database's
            assert await survivor.fetchval(
                "SELECT store_submission($1, 'web_nojs', $2, $3)",
                hash_token(poster),
                os.urandom(1072),
                receipt,
            )
        finally:
            await survivor.close()
        return counted

    made = await make_release(
        worker_conn,
        scope,
        layout=line.layout,
        epsilon=line.epsilon,
        threshold=11,
        count=count_while_one_arrives,
    )
    assert made.created
    assert made.quarantined == 0
    late = await conn.fetchrow(
        "SELECT received_week, included_in_release FROM submissions WHERE receipt_hash = $1",
        receipt,
    )
    assert late is not None
    assert late["received_week"] == await conn.fetchval("SELECT current_iso_week()")
    assert late["included_in_release"] is False  # it counts in its own period, later
    assert await conn.fetchval("SELECT count(*) FROM submissions WHERE included_in_release") == 3


async def test_a_withdrawal_while_a_period_is_counted_is_told_the_answers_are_counted(
    conn: Connection, worker_conn: Connection, database_url: str
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    line = await plan(worker_conn, t, program_id=t.program_id)
    receipt = os.urandom(32)
    envelope = Envelope("rights-based", 1, "en", {"believed": 4})
    await conn.execute(
        "INSERT INTO submissions (organisation_id, program_id, survey_id, channel, "
        "received_week, ciphertext, receipt_hash) VALUES ($1, $2, $3, 'web', $4, $5, $6)",
        t.organisation_id,
        t.program_id,
        t.survey_id,
        dt.date(2026, 8, 3),
        seal(keyed.private_key.public_key, envelope.to_plaintext()),
        receipt,
    )
    scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q3"))
    real = counter(worker_conn, scope, layout=line.layout, keys=await _unlocked(keyed))
    told = []

    async def count_while_one_withdraws() -> Any:
        counted = await real()
        survivor = await connect(database_url, role=SURVIVOR)
        try:
            told.append(await survivor.fetchval("SELECT withdraw_submission($1)", receipt))
        finally:
            await survivor.close()
        return counted

    await make_release(
        worker_conn,
        scope,
        layout=line.layout,
        epsilon=line.epsilon,
        threshold=11,
        count=count_while_one_withdraws,
    )
    assert told == ["counted"]  # the truth: the answer is in the release
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_a_refused_release_takes_back_its_counted_marks(
    conn: Connection, worker_conn: Connection
) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    line = await plan(worker_conn, t, program_id=t.program_id)
    await factories.submission(conn, t, week=dt.date(2026, 8, 3), ciphertext=os.urandom(1072))
    await conn.execute(  # a key that took answers in Q3, not unlocked
        "INSERT INTO collection_keys (organisation_id, public_key, created_week, retired_week) "
        "VALUES ($1, $2, '2026-07-06', '2026-08-03')",
        t.organisation_id,
        os.urandom(32),
    )
    scope = Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse("2026-Q3"))
    count = counter(worker_conn, scope, layout=line.layout, keys=await _unlocked(keyed))
    with pytest.raises(KeysMissing):  # refused after the rows were marked
        await make_release(
            worker_conn, scope, layout=line.layout, epsilon=line.epsilon, threshold=11, count=count
        )
    assert not await conn.fetchval("SELECT bool_or(included_in_release) FROM submissions")
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 0
