"""`feedback jobs`: the worker's scheduled jobs, listed, or one run now."""

from __future__ import annotations

import click

from feedback.cli.common import run
from feedback.cli.runtime import ready_database
from feedback.cli.wiring import worker_jobs
from feedback.config import Settings
from feedback.db import WORKER
from feedback.errors import FeedbackError
from feedback.jobs import run_now
from feedback.secretfiles import resolve_secrets


@click.group()
def jobs() -> None:
    """The worker's scheduled jobs: list them, or run one now."""


@jobs.command("list")
@run
async def list_jobs(settings: Settings) -> None:
    """Each job, how often each worker runs it, and the day it last ran."""
    async with ready_database(settings, role=WORKER) as (url, pool), pool.acquire() as conn:
        last = {
            row["job"]: row for row in await conn.fetch("SELECT job, ran_on, outcome FROM job_runs")
        }
    for job in worker_jobs(settings, url, resolve_secrets(settings).phone_hmac):
        row = last.get(job.name)
        ran = f"last ran on {row['ran_on']:%Y-%m-%d}: {row['outcome']}" if row else "not run yet"
        click.echo(f"{job.name:<28} every {_every(job.every.total_seconds())}  {ran}")


def _every(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 60)} min"


@jobs.command("run")
@click.argument("name")
@run
async def run_job(settings: Settings, name: str) -> None:
    """Run the job NAME now, under the same lock as the worker (`feedback jobs list` names
    them)."""
    async with ready_database(settings, role=WORKER) as (url, pool):
        # (the purge of idle SMS conversations checks the phone key when it runs)
        known = {
            job.name: job
            for job in worker_jobs(settings, url, resolve_secrets(settings).phone_hmac)
        }
        job = known.get(name)
        if job is None:
            raise FeedbackError(f"no job {name!r}; the jobs are: {', '.join(sorted(known))}")
        outcome = await run_now(pool, job)
    click.echo(f"{name}: {outcome}")
