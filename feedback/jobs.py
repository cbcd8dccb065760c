"""Scheduled jobs: each worker runs each job every so often, never two runs of a job at once
across any number of workers.

A run happens in one transaction that first tries a transaction-level advisory lock for the
job: a worker that finds it taken skips that run. If the job fails, the transaction rolls
back, and the next tick tries again. ``run_now`` runs a job at once (``feedback jobs run``),
under the same lock.

``job_runs`` keeps one row per job: the day it last ran and its outcome, a short text that
counts nothing about survivors. The row is written only when either changes, and never holds
a time finer than the day: a row stamped at every run would date every answer stored between
two runs (transaction ids are a clock; ../shared/PRIVACY.md, Metadata). So a job's period is
how often each worker runs it, not a slice of time claimed across workers: every job here is
safe to run again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from feedback.db import Connection, Pool
from feedback.errors import FeedbackError

log = logging.getLogger(__name__)

Action = Callable[[Connection], Awaitable[str]]
"""A job's work, given a connection inside the run's transaction; returns a short outcome."""


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every: dt.timedelta
    action: Action


JOB_TIMEOUT = "10min"  # a job's statements may run longer than a web request's


class JobBusy(FeedbackError):
    pass


async def _lock(conn: Connection, job: Job) -> bool:
    await conn.execute(f"SET LOCAL statement_timeout = '{JOB_TIMEOUT}'")
    locked: bool = await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtext('feedback.jobs'), hashtext($1))", job.name
    )
    return locked


async def _remember(conn: Connection, job: Job, outcome: str) -> None:
    """The day the job ran and its outcome, written only when one of them changed."""
    # Not an upsert: ON CONFLICT DO UPDATE locks the row even when it changes nothing, and
    # the lock's transaction id (xmax) would date each run.
    await conn.execute(
        "INSERT INTO job_runs (job, outcome) VALUES ($1, $2) ON CONFLICT (job) DO NOTHING",
        job.name,
        outcome,
    )
    await conn.execute(
        """
        UPDATE job_runs SET ran_on = utc_today(), outcome = $2
         WHERE job = $1 AND (ran_on, outcome) IS DISTINCT FROM (utc_today(), $2)
        """,
        job.name,
        outcome,
    )


async def run_once(pool: Pool, job: Job) -> bool:
    """Run ``job`` unless another worker is running it now; True if this did."""
    async with pool.acquire() as conn, conn.transaction():
        if not await _lock(conn, job):
            log.debug("job %s: another worker is running it", job.name)
            return False
        outcome = await job.action(conn)
        await _remember(conn, job, outcome)
    log.info("job %s: %s", job.name, outcome)
    return True


async def run_now(pool: Pool, job: Job) -> str:
    """Run ``job`` now, under the same lock as the scheduler; its outcome is returned."""
    async with pool.acquire() as conn, conn.transaction():
        if not await _lock(conn, job):
            raise JobBusy(f"a worker is running {job.name} now: try again when it has finished")
        outcome = await job.action(conn)
        await _remember(conn, job, outcome)
    log.info("job %s: %s", job.name, outcome)
    return outcome


async def _run_logged(pool: Pool, job: Job) -> None:
    try:
        await run_once(pool, job)
    except Exception:
        log.exception("job %s failed; it will be retried at the next tick", job.name)


def build_scheduler(pool: Pool, jobs: Sequence[Job]) -> AsyncIOScheduler:
    """A scheduler running each job every ``job.every``, the first time at once; start it
    inside the event loop."""
    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    for job in jobs:
        scheduler.add_job(
            _run_logged,
            IntervalTrigger(seconds=max(1, job.every.total_seconds()), timezone=dt.UTC),
            kwargs={"pool": pool, "job": job},
            id=job.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(job.every.total_seconds())),
            next_run_time=dt.datetime.now(dt.UTC),
        )
    return scheduler
