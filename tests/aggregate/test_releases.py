"""Releases and the budget: stored once, spent once, never over, never half."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from feedback.aggregate.privacy import Tally
from feedback.aggregate.releases import BudgetExceeded, Scope, make_release
from feedback.cells import Layout
from feedback.db import Connection, connect
from feedback.periods import BadPeriod, Period
from feedback.surveys import load_survey
from tests import factories

SURVEY = load_survey()
LAYOUT = Layout.plan(SURVEY, ["believed", "safe_now"])


def counter(respondents: int = 40) -> Any:
    async def count() -> tuple[Tally, dict[str, Any]]:
        tally = Tally(LAYOUT)
        for i in range(respondents):
            tally.add({"believed": 1 + i % 5})
        return tally, {"quarantined": 0}

    return count


async def scope_for(conn: Connection, period: str = "2026-Q3") -> Scope:
    t = await factories.tenant(conn)
    return Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse(period))


def test_periods() -> None:
    q3 = Period.parse("2026-Q3")
    assert (q3.start, q3.end) == (dt.date(2026, 7, 1), dt.date(2026, 10, 1))
    assert Period.parse("2026-12").end == dt.date(2027, 1, 1)
    assert Period.parse("2026").granularity == "year"
    assert str(Period.parse("2026-q4")) == "2026-Q4"
    first, last = q3.weeks()
    assert first.weekday() == last.weekday() == 0
    assert q3.start <= first < q3.start + dt.timedelta(days=7)
    for bad in ("2026-13", "26-Q1", "2026-Q5", "last quarter"):
        with pytest.raises(BadPeriod):
            Period.parse(bad)


async def test_release_is_stored_with_its_ledger_entry(conn: Connection) -> None:
    scope = await scope_for(conn)
    made = await make_release(
        conn, scope, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter()
    )
    assert made.created
    assert made.epsilon == Decimal("1.0")
    assert made.noise_scale == Decimal("3.0")  # (1 + 2 questions) / epsilon
    [group] = made.cells["groups"]
    assert group["group"] == "all"
    assert set(group["questions"]["believed"]) == {"1", "2", "3", "4", "5", "prefer_not", "skipped"}
    ledger = await conn.fetch("SELECT release_id, budget_year, epsilon FROM privacy_ledger")
    assert [tuple(r) for r in ledger] == [(made.id, 2026, Decimal("1.0"))]


async def test_asking_again_returns_the_stored_numbers_and_spends_nothing(conn: Connection) -> None:
    scope = await scope_for(conn)
    first = await make_release(
        conn, scope, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter()
    )
    calls = 0

    async def must_not_count() -> tuple[Tally, dict[str, Any]]:
        nonlocal calls
        calls += 1
        raise AssertionError("a stored release must not be counted again")

    again = await make_release(
        conn, scope, layout=LAYOUT, epsilon=1.0, threshold=11, count=must_not_count
    )
    assert not again.created
    assert again.id == first.id
    assert again.cells == first.cells
    assert calls == 0
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 1


async def test_small_groups_are_marked_suppressed_never_zero(conn: Connection) -> None:
    scope = await scope_for(conn)
    made = await make_release(
        conn, scope, layout=LAYOUT, epsilon=1.0, threshold=1000, count=counter(3)
    )
    [group] = made.cells["groups"]
    assert group["n"] == "S"
    assert {v for cells in group["questions"].values() for v in cells.values()} == {"S"}


async def test_over_budget_is_refused_and_the_ledger_is_unchanged(conn: Connection) -> None:
    scope = await scope_for(conn)
    await conn.execute(
        "UPDATE organisations SET epsilon_per_year = 1.5, epsilon_per_release = 1.0 WHERE id = $1",
        scope.organisation_id,
    )
    await make_release(conn, scope, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter())
    q4 = Scope(scope.organisation_id, scope.program_id, scope.survey_id, Period.parse("2026-Q4"))
    with pytest.raises(BudgetExceeded) as refused:
        await make_release(conn, q4, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter())
    message = str(refused.value)
    assert "only 0.5 of the 2026 budget of 1.5 is left" in message
    assert "renews on 2027-01-01" in message
    assert await conn.fetchval("SELECT count(*) FROM releases") == 1
    assert await conn.fetchval("SELECT sum(epsilon) FROM privacy_ledger") == Decimal("1.0")
    # A new year has a new budget.
    next_year = Scope(
        scope.organisation_id, scope.program_id, scope.survey_id, Period.parse("2027-Q1")
    )
    made = await make_release(
        conn, next_year, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter()
    )
    assert made.created


async def test_two_workers_at_once_cannot_overspend(conn: Connection, database_url: str) -> None:
    scope = await scope_for(conn)
    await conn.execute(
        "UPDATE organisations SET epsilon_per_year = 1.5, epsilon_per_release = 1.0 WHERE id = $1",
        scope.organisation_id,
    )
    q4 = Scope(scope.organisation_id, scope.program_id, scope.survey_id, Period.parse("2026-Q4"))
    first, second = await connect(database_url), await connect(database_url)
    try:
        outcomes = await asyncio.gather(
            make_release(first, scope, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter()),
            make_release(second, q4, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter()),
            return_exceptions=True,
        )
    finally:
        await first.close()
        await second.close()
    assert sorted(type(o).__name__ for o in outcomes) == ["BudgetExceeded", "StoredRelease"]
    assert await conn.fetchval("SELECT sum(epsilon) FROM privacy_ledger") == Decimal("1.0")


async def test_two_workers_releasing_the_same_period_store_one_release(
    conn: Connection, database_url: str
) -> None:
    scope = await scope_for(conn)
    first, second = await connect(database_url), await connect(database_url)
    try:
        a, b = await asyncio.gather(
            make_release(first, scope, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter()),
            make_release(second, scope, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter()),
        )
    finally:
        await first.close()
        await second.close()
    assert a.id == b.id
    assert a.cells == b.cells
    assert sorted([a.created, b.created]) == [False, True]
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 1


async def test_a_killed_run_leaves_nothing_and_the_next_run_succeeds(
    conn: Connection, database_url: str
) -> None:
    scope = await scope_for(conn)
    doomed = await connect(database_url)
    reached = asyncio.Event()

    async def die_before_commit() -> None:
        reached.set()
        await asyncio.sleep(30)  # the worker is killed while it holds the transaction open

    run = asyncio.create_task(
        make_release(
            doomed,
            scope,
            layout=LAYOUT,
            epsilon=1.0,
            threshold=11,
            count=counter(),
            before_commit=die_before_commit,
        )
    )
    await reached.wait()
    # What kill -9 of the worker leaves: its task gone, its connection dropped mid-transaction.
    run.cancel()
    await conn.execute("SELECT pg_terminate_backend($1)", doomed.get_server_pid())
    with pytest.raises(asyncio.CancelledError):
        await run
    doomed.terminate()
    assert await conn.fetchval("SELECT count(*) FROM releases") == 0
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 0
    made = await make_release(
        conn, scope, layout=LAYOUT, epsilon=1.0, threshold=11, count=counter()
    )
    assert made.created
