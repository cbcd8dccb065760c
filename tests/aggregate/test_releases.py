"""Releases and the budget: stored once, spent once, never over, never half."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from feedback.aggregate.privacy import Counted, Noise, Tally
from feedback.aggregate.releases import BudgetExceeded, PeriodNotEnded, Scope, make_release
from feedback.db import WORKER, Connection, connect
from feedback.stats import means
from feedback.stats.budget import cost_of
from feedback.stats.cells import Layout, PrivacyError
from feedback.stats.periods import BadPeriod, Period
from feedback.surveys import FIRST_VERSION, load_survey
from tests import factories

SURVEY = load_survey(FIRST_VERSION)
LAYOUT = Layout.plan(SURVEY, ["believed", "safe_now"])


ONE = Decimal("1.0")


def counter(layout: Layout = LAYOUT, respondents: int = 40) -> Any:
    async def count() -> tuple[Counted, dict[str, Any]]:
        tally = Tally(layout)
        for i in range(respondents):
            tally.add({"believed": 1 + i % 5})
        return Counted(tally, respondents, 0), {"privacy_unit": "invitation"}

    return count


async def scope_for(conn: Connection, period: str = "2026-Q3") -> Scope:
    t = await factories.tenant(conn)
    return Scope(t.organisation_id, t.program_id, t.survey_id, Period.parse(period))


def other(scope: Scope, period: str) -> Scope:
    return Scope(scope.organisation_id, scope.program_id, scope.survey_id, Period.parse(period))


async def worker(database_url: str) -> Connection:
    return await connect(database_url, role=WORKER)


def test_periods() -> None:
    q3 = Period.parse("2026-Q3")
    assert (q3.start, q3.end) == (dt.date(2026, 7, 1), dt.date(2026, 10, 1))
    assert Period.parse("2026-12").end == dt.date(2027, 1, 1)
    assert Period.parse("2026").granularity == "year"
    assert str(Period.parse("2026-q4")) == "2026-Q4"
    h1, h2 = Period.parse("2026-H1"), Period.parse("2026-h2")
    assert (h1.granularity, h1.start, h1.end) == ("half", dt.date(2026, 1, 1), dt.date(2026, 7, 1))
    assert (h2.start, h2.end, str(h2)) == (dt.date(2026, 7, 1), dt.date(2027, 1, 1), "2026-H2")
    assert Period.of("half", dt.date(2026, 7, 1)) == h2
    first, last = q3.weeks()
    assert first.weekday() == last.weekday() == 0
    assert q3.start <= first < q3.start + dt.timedelta(days=7)
    bad_periods = ("2026-13", "26-Q1", "2026-Q5", "2026-H3", "2026-H0", "last quarter")
    for bad in (*bad_periods, "0000", "9999-Q4", "1999-12", "2201"):  # years of the ledger
        with pytest.raises(BadPeriod):
            Period.parse(bad)


async def test_release_is_stored_with_its_ledger_entry(
    conn: Connection, worker_conn: Connection
) -> None:
    scope = await scope_for(conn)
    made = await make_release(
        worker_conn, scope, layout=LAYOUT, epsilon=ONE, threshold=11, count=counter()
    )
    assert made.created
    assert made.epsilon == Decimal("1.0")
    assert made.noise_scale == Decimal("3.0")  # (1 + 2 questions) / epsilon
    [group] = made.cells["groups"]
    assert group["group"] == "all"
    assert set(group["questions"]["believed"]) == {
        "agree",
        "neither",
        "disagree",
        "prefer_not",
        "skipped",
    }
    ledger = await conn.fetch("SELECT release_id, budget_year, epsilon FROM privacy_ledger")
    assert [tuple(r) for r in ledger] == [(made.id, 2026, Decimal("1.0"))]


async def test_asking_again_returns_the_stored_numbers_and_spends_nothing(
    conn: Connection, worker_conn: Connection
) -> None:
    scope = await scope_for(conn)
    first = await make_release(
        worker_conn, scope, layout=LAYOUT, epsilon=ONE, threshold=11, count=counter()
    )
    calls = 0

    async def must_not_count() -> tuple[Counted, dict[str, Any]]:
        nonlocal calls
        calls += 1
        raise AssertionError("a stored release must not be counted again")

    again = await make_release(
        worker_conn, scope, layout=LAYOUT, epsilon=ONE, threshold=11, count=must_not_count
    )
    assert not again.created
    assert again.id == first.id
    assert again.cells == first.cells
    assert calls == 0
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 1


async def test_small_groups_are_marked_suppressed_never_zero(
    conn: Connection, worker_conn: Connection
) -> None:
    scope = await scope_for(conn)
    made = await make_release(
        worker_conn, scope, layout=LAYOUT, epsilon=ONE, threshold=1000, count=counter(respondents=3)
    )
    [group] = made.cells["groups"]
    assert group["n"] == "S"
    assert {v for cells in group["questions"].values() for v in cells.values()} == {"S"}


async def test_over_budget_is_refused_and_the_ledger_is_unchanged(
    conn: Connection, worker_conn: Connection
) -> None:
    scope = await scope_for(conn)
    await conn.execute(
        "UPDATE organisations SET epsilon_per_year = 1.5, epsilon_per_release = 1.0 WHERE id = $1",
        scope.organisation_id,
    )
    release = functools.partial(
        make_release, worker_conn, layout=LAYOUT, epsilon=ONE, threshold=11, count=counter()
    )
    await release(scope)
    with pytest.raises(BudgetExceeded) as refused:
        await release(other(scope, "2026-Q2"))
    message = str(refused.value)
    assert "only 0.500000 of the 2026 budget of 1.5 is left" in message
    assert "renews on 2027-01-01" in message
    assert await conn.fetchval("SELECT count(*) FROM releases") == 1
    assert await conn.fetchval("SELECT sum(epsilon) FROM privacy_ledger") == ONE
    made = await release(other(scope, "2025-Q4"))  # another year has a budget of its own
    assert made.created


async def test_a_period_that_has_not_ended_is_refused_and_nothing_is_spent(
    conn: Connection, worker_conn: Connection
) -> None:
    this_week = await conn.fetchval("SELECT current_iso_week()")
    running = Period.parse(f"{this_week:%Y-%m}")
    scope = await scope_for(conn, str(running))
    with pytest.raises(PeriodNotEnded, match=f"{running} has not ended"):
        await make_release(
            worker_conn, scope, layout=LAYOUT, epsilon=ONE, threshold=11, count=counter()
        )
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 0


async def test_an_indices_release_needs_its_kind_and_its_split_and_spends_no_more(
    conn: Connection, worker_conn: Connection
) -> None:
    indices = Layout.for_indices(SURVEY)
    plan = means.split(ONE, indices=2, expected_n=60)
    scope = await scope_for(conn)
    for wrong in (
        {"layout": indices, "split": plan},  # the scope says questions
        {"layout": LAYOUT, "split": None, "kind": "indices"},
        {"layout": indices, "split": None, "kind": "indices"},
        {"layout": indices, "split": means.split(2.0, indices=2, expected_n=60), "kind": "indices"},
    ):
        kind = str(wrong.pop("kind", "questions"))
        with pytest.raises(PrivacyError):
            await make_release(
                worker_conn,
                dataclasses.replace(scope, kind=kind),
                epsilon=ONE,
                threshold=11,
                count=counter(),
                **wrong,
            )
    made = await make_release(
        worker_conn,
        dataclasses.replace(scope, kind="indices"),
        layout=indices,
        epsilon=ONE,
        threshold=11,
        count=counter(indices),
        split=plan,
    )
    assert made.epsilon <= ONE
    assert set(made.cells) == {
        "groups",
        "count_scale",
        "sum_scale",
        "squares_scale",
        "split",
        "covers",
    }
    assert "sampling" in made.cells["covers"]
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 1


async def test_costs_are_recorded_rounded_up_and_never_over_what_was_planned(
    conn: Connection, worker_conn: Connection
) -> None:
    assert cost_of(0.1234561) == Decimal("0.123457")
    assert cost_of(Decimal("0.7")) == Decimal("0.700000")
    scope = await scope_for(conn)
    planned = Decimal("0.7")  # 3 / 0.7 as a float spends 0.7000000000000001 by OpenDP's count
    made = await make_release(
        worker_conn, scope, layout=LAYOUT, epsilon=planned, threshold=11, count=counter()
    )
    spent_by_opendp = Decimal(Noise(planned, LAYOUT.sensitivity).spent())
    assert spent_by_opendp <= made.epsilon <= planned
    assert made.epsilon == planned


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read", "serializable"])
async def test_two_workers_at_once_cannot_overspend_at_any_isolation_level(
    conn: Connection, database_url: str, isolation: str
) -> None:
    """Two releases of 3.0 against a budget of 4: the second starts while the first, holding
    the organisation's lock, is about to commit. Whatever the database's default isolation,
    the second must see the first's ledger entry once it has the lock."""
    name = await conn.fetchval("SELECT current_database()")
    await conn.execute(
        f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = '{isolation}'"
    )
    scope = await scope_for(conn, "2026-Q2")
    await conn.execute(
        "UPDATE organisations SET epsilon_per_year = 4 WHERE id = $1", scope.organisation_id
    )
    first, second = await worker(database_url), await worker(database_url)
    assert await second.fetchval("SHOW default_transaction_isolation") == isolation
    holding = asyncio.Event()

    async def hold() -> None:
        holding.set()
        await asyncio.sleep(0.5)

    three = Decimal(3)
    try:
        outcomes = await asyncio.gather(
            make_release(
                first,
                scope,
                layout=LAYOUT,
                epsilon=three,
                threshold=11,
                count=counter(),
                before_commit=hold,
            ),
            _after(
                holding,
                make_release(
                    second,
                    other(scope, "2026-Q3"),
                    layout=LAYOUT,
                    epsilon=three,
                    threshold=11,
                    count=counter(),
                ),
            ),
            return_exceptions=True,
        )
    finally:
        await first.close()
        await second.close()
    assert sorted(type(o).__name__ for o in outcomes) == ["BudgetExceeded", "StoredRelease"]
    assert await conn.fetchval("SELECT sum(epsilon) FROM privacy_ledger") == three


async def _after(event: asyncio.Event, work: Any) -> Any:
    await event.wait()
    return await work


async def test_two_workers_releasing_the_same_period_store_one_release(
    conn: Connection, database_url: str
) -> None:
    scope = await scope_for(conn)
    first, second = await worker(database_url), await worker(database_url)
    try:
        a, b = await asyncio.gather(
            make_release(first, scope, layout=LAYOUT, epsilon=ONE, threshold=11, count=counter()),
            make_release(second, scope, layout=LAYOUT, epsilon=ONE, threshold=11, count=counter()),
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
    doomed = await worker(database_url)
    reached = asyncio.Event()

    async def die_before_commit() -> None:
        reached.set()
        await asyncio.sleep(30)  # the worker is killed while it holds the transaction open

    run = asyncio.create_task(
        make_release(
            doomed,
            scope,
            layout=LAYOUT,
            epsilon=ONE,
            threshold=11,
            count=counter(),
            before_commit=die_before_commit,
        )
    )
    await reached.wait()
    # What kill -9 of the worker leaves: its task gone, its connection dropped mid-transaction.
    run.cancel()
    await conn.execute("SELECT pg_terminate_backend($1)", doomed.get_server_pid())
    # The task ends cancelled, or, where the connection dropped while it was rolling back,
    # with the connection's error: either way nothing of it stays.
    with pytest.raises(
        (asyncio.CancelledError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
    ):
        await run
    doomed.terminate()
    assert await conn.fetchval("SELECT count(*) FROM releases") == 0
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 0
    again = await worker(database_url)
    try:
        made = await make_release(
            again, scope, layout=LAYOUT, epsilon=ONE, threshold=11, count=counter()
        )
    finally:
        await again.close()
    assert made.created
