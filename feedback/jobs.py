"""Scheduled jobs that run at most once per period across any number of workers.

Each run happens in one transaction that first takes a transaction-level advisory lock for the
job (so two workers cannot overlap) and then inserts the ``(job, period)`` row into
``job_runs`` (so a worker that arrives after another finished does nothing). If the job fails,
the transaction rolls back with the row, and the next tick tries again. ``run_now`` runs a job
at once (``feedback jobs run``), under the same lock.

A run's outcome is a short text that counts nothing about survivors: ``job_runs`` rows carry
the time they ran.
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

    def period(self, now: dt.datetime) -> str:
        """The period ``now`` falls in: ``every``-long slices of UTC time since the epoch."""
        slot = int(now.timestamp()) // int(self.every.total_seconds())
        start = dt.datetime.fromtimestamp(slot * self.every.total_seconds(), dt.UTC)
        return start.strftime("%Y-%m-%dT%H:%M:%SZ")


JOB_TIMEOUT = "10min"  # a job's statements may run longer than a web request's


class JobBusy(FeedbackError):
    pass


async def _lock(conn: Connection, job: Job) -> bool:
    await conn.execute(f"SET LOCAL statement_timeout = '{JOB_TIMEOUT}'")
    locked: bool = await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtext('feedback.jobs'), hashtext($1))", job.name
    )
    return locked


async def run_once(pool: Pool, job: Job, now: dt.datetime | None = None) -> bool:
    """Run ``job`` for the period of ``now`` unless some worker already has; True if this did."""
    period = job.period(now or dt.datetime.now(dt.UTC))
    async with pool.acquire() as conn, conn.transaction():
        if not await _lock(conn, job):
            log.debug("job %s %s: another worker is running it", job.name, period)
            return False
        claimed = await conn.fetchval(
            """
            INSERT INTO job_runs (job, period) VALUES ($1, $2)
            ON CONFLICT (job, period) DO NOTHING
            RETURNING true
            """,
            job.name,
            period,
        )
        if not claimed:
            log.debug("job %s %s: already ran", job.name, period)
            return False
        outcome = await job.action(conn)
        await conn.execute(
            "UPDATE job_runs SET outcome = $3 WHERE job = $1 AND period = $2",
            job.name,
            period,
            outcome,
        )
    log.info("job %s %s: %s", job.name, period, outcome)
    return True


async def run_now(pool: Pool, job: Job) -> str:
    """Run ``job`` now, whether or not its period has run, under the same lock as the
    scheduler; the run is recorded as a manual one. Its outcome is returned."""
    period = "manual " + dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with pool.acquire() as conn, conn.transaction():
        if not await _lock(conn, job):
            raise JobBusy(f"a worker is running {job.name} now: try again when it has finished")
        outcome = await job.action(conn)
        await conn.execute(
            "INSERT INTO job_runs (job, period, outcome) VALUES ($1, $2, $3) "
            "ON CONFLICT (job, period) DO UPDATE SET outcome = EXCLUDED.outcome",
            job.name,
            period,
            outcome,
        )
    log.info("job %s %s: %s", job.name, period, outcome)
    return outcome


async def _run_logged(pool: Pool, job: Job) -> None:
    try:
        await run_once(pool, job)
    except Exception:
        log.exception("job %s failed; it will be retried at the next tick", job.name)


def build_scheduler(pool: Pool, jobs: Sequence[Job]) -> AsyncIOScheduler:
    """A scheduler ticking each job at a fifth of its period; start it inside the event loop."""
    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    for job in jobs:
        scheduler.add_job(
            _run_logged,
            IntervalTrigger(seconds=max(1, job.every.total_seconds() / 5), timezone=dt.UTC),
            kwargs={"pool": pool, "job": job},
            id=job.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(job.every.total_seconds()),
            next_run_time=dt.datetime.now(dt.UTC),
        )
    return scheduler
