from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from feedback.db import WORKER, Connection, Pool, create_pool
from feedback.jobs import Job, build_scheduler, run_once

NOW = dt.datetime(2026, 11, 23, 22, 17, 5, tzinfo=dt.UTC)


class Counter:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    async def __call__(self, conn: Connection) -> str:
        self.calls += 1
        await conn.execute("SELECT pg_sleep($1)", self.delay)
        return f"call {self.calls}"


def test_period_is_the_slice_of_time_the_moment_falls_in() -> None:
    hourly = Job("x", dt.timedelta(hours=1), Counter())
    assert hourly.period(NOW) == "2026-11-23T22:00:00Z"
    assert hourly.period(NOW + dt.timedelta(minutes=42)) == "2026-11-23T22:00:00Z"
    assert hourly.period(NOW + dt.timedelta(minutes=43)) == "2026-11-23T23:00:00Z"
    five = Job("y", dt.timedelta(minutes=5), Counter())
    assert five.period(NOW) == "2026-11-23T22:15:00Z"


async def test_two_workers_at_once_run_the_job_once(database_url: str) -> None:
    action = Counter(delay=0.3)
    job = Job("demo-job", dt.timedelta(hours=1), action)
    async with (
        create_pool(database_url, role=WORKER, max_size=2) as first,
        create_pool(database_url, role=WORKER, max_size=2) as second,
    ):
        ran = await asyncio.gather(run_once(first, job, NOW), run_once(second, job, NOW))
        async with first.acquire() as conn:
            rows = await conn.fetch("SELECT job, period, outcome FROM job_runs")
    assert sorted(ran) == [False, True]
    assert action.calls == 1
    assert [tuple(r) for r in rows] == [("demo-job", "2026-11-23T22:00:00Z", "call 1")]


async def test_a_finished_period_is_not_run_again(pool: Pool) -> None:
    action = Counter()
    job = Job("demo-job", dt.timedelta(hours=1), action)
    assert await run_once(pool, job, NOW)
    assert not await run_once(pool, job, NOW + dt.timedelta(minutes=30))
    assert await run_once(pool, job, NOW + dt.timedelta(hours=1))
    assert action.calls == 2


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
        await run_once(pool, job, NOW)
    assert await run_once(pool, job, NOW)  # the first attempt's row and side effect rolled back
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT outcome FROM job_runs WHERE job = 'flaky'") == "ok"


async def test_schedulers_in_two_workers_run_each_period_once(database_url: str) -> None:
    action = Counter(delay=0.05)
    job = Job("tick", dt.timedelta(seconds=1), action)
    async with (
        create_pool(database_url, role=WORKER, max_size=2) as first,
        create_pool(database_url, role=WORKER, max_size=2) as second,
    ):
        schedulers = [build_scheduler(first, [job]), build_scheduler(second, [job])]
        for scheduler in schedulers:
            scheduler.start()
        await asyncio.sleep(3.2)
        for scheduler in schedulers:
            scheduler.shutdown(wait=False)
        await asyncio.sleep(0.2)
        async with first.acquire() as conn:
            periods = await conn.fetchval("SELECT count(*) FROM job_runs WHERE job = 'tick'")
    assert periods == action.calls
    assert 3 <= periods <= 5
