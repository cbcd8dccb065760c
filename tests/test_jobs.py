from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from feedback.db import WORKER, Connection, Pool, create_pool
from feedback.jobs import Job, build_scheduler, run_once


class Counter:
    def __init__(self, delay: float = 0.0, outcome: str = "done") -> None:
        self.calls = 0
        self.delay = delay
        self.outcome = outcome

    async def __call__(self, conn: Connection) -> str:
        self.calls += 1
        await conn.execute("SELECT pg_sleep($1)", self.delay)
        return self.outcome


async def test_two_workers_at_once_run_the_job_once(database_url: str) -> None:
    action = Counter(delay=0.3)
    job = Job("demo-job", dt.timedelta(hours=1), action)
    async with (
        create_pool(database_url, role=WORKER, max_size=2) as first,
        create_pool(database_url, role=WORKER, max_size=2) as second,
    ):
        ran = await asyncio.gather(run_once(first, job), run_once(second, job))
        async with first.acquire() as conn:
            rows = await conn.fetch("SELECT job, ran_on, outcome FROM job_runs")
    assert sorted(ran) == [False, True]
    assert action.calls == 1
    today = dt.datetime.now(dt.UTC).date()
    assert [tuple(r) for r in rows] == [("demo-job", today, "done")]


async def test_a_job_row_keeps_the_day_and_is_rewritten_only_when_it_changes(pool: Pool) -> None:
    """A row rewritten at every run would date, by its transaction id, every answer stored
    between two runs."""
    action = Counter()
    job = Job("demo-job", dt.timedelta(minutes=5), action)
    assert await run_once(pool, job)
    async with pool.acquire() as conn:
        first = await conn.fetchval("SELECT xmin::text FROM job_runs")
        assert await run_once(pool, job)
        assert await conn.fetchval("SELECT xmin::text FROM job_runs") == first
        # Not even locked by the run: a lock's transaction id (xmax) would date it as well.
        assert await conn.fetchval("SELECT xmax::text FROM job_runs") == "0"
        action.outcome = "something else"
        assert await run_once(pool, job)
        assert await conn.fetchval("SELECT xmin::text FROM job_runs") != first
        columns = await conn.fetch(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'job_runs'"
        )
    assert {c["data_type"] for c in columns} == {"text", "date"}
    assert action.calls == 3


async def test_a_failed_run_is_retried(pool: Pool) -> None:
    attempts = 0

    async def flaky(conn: Connection) -> str:
        nonlocal attempts
        attempts += 1
        await conn.execute("CREATE TABLE side_effect (id int)")
        if attempts == 1:
            raise RuntimeError("boom")
        return "ok"

    job = Job("flaky", dt.timedelta(hours=1), flaky)
    with pytest.raises(RuntimeError):
        await run_once(pool, job)
    assert await run_once(pool, job)  # the first attempt's row and side effect rolled back
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT outcome FROM job_runs WHERE job = 'flaky'") == "ok"


async def test_schedulers_in_two_workers_never_run_a_job_at_once(database_url: str) -> None:
    running = 0
    overlaps = calls = 0

    async def slow(conn: Connection) -> str:
        nonlocal running, overlaps, calls
        running += 1
        calls += 1
        overlaps += running > 1
        await conn.execute("SELECT pg_sleep(0.6)")
        running -= 1
        return "done"

    job = Job("tick", dt.timedelta(seconds=1), slow)
    async with (
        create_pool(database_url, role=WORKER, max_size=2) as first,
        create_pool(database_url, role=WORKER, max_size=2) as second,
    ):
        schedulers = [build_scheduler(first, [job]), build_scheduler(second, [job])]
        for scheduler in schedulers:
            scheduler.start()
        await asyncio.sleep(2.5)
        for scheduler in schedulers:
            scheduler.shutdown(wait=False)
        await asyncio.sleep(0.8)
    assert overlaps == 0
    assert calls >= 2
