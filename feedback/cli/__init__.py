"""The ``feedback`` command: the one place that wires collect, aggregate and publish together.

Every command reads settings from ``FEEDBACK_*`` variables (see the README). Errors we expect
print one line and exit 1.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Literal

import click
from starlette.applications import Starlette

from feedback import __version__, web
from feedback.aggregate import jobs as aggregate_jobs
from feedback.aggregate.scheduled import scheduled_releases_job
from feedback.cli import demo as demo_module
from feedback.cli.aggregate import aggregate
from feedback.cli.common import run
from feedback.cli.invitations import invitations
from feedback.cli.keys import keys
from feedback.cli.plan import plan
from feedback.cli.runtime import (
    bind,
    database,
    ready_database,
    ready_pool,
    serve,
    stop_on_signals,
)
from feedback.cli.sms_sim import sms_sim
from feedback.cli.users import users
from feedback.collect import jobs as collect_jobs
from feedback.collect.app import create_app as create_survivor_app
from feedback.config import Settings
from feedback.db import Pool, connect
from feedback.errors import FeedbackError
from feedback.jobs import Job, build_scheduler
from feedback.migrate import apply_migrations, pending
from feedback.publish.app import STAFF_PREFIX
from feedback.publish.app import create_app as create_staff_app
from feedback.secretfiles import ServiceSecrets, resolve_secrets

log = logging.getLogger("feedback")

AppChoice = Literal["both", "survivor", "staff"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="feedback")
def main() -> None:
    """Anonymous survivor feedback: collect sealed answers, release only what is safe.

    Settings come from FEEDBACK_* environment variables; without FEEDBACK_DATABASE_URL an
    embedded PostgreSQL runs in FEEDBACK_DATA_DIR.
    """


@main.command()
@click.option("--dry-run", is_flag=True, help="List pending migrations and print their SQL.")
@run
async def migrate(settings: Settings, dry_run: bool) -> None:
    """Bring the database schema up to date (safe to run any number of times)."""
    async with database(settings) as url:
        conn = await connect(url)
        try:
            if dry_run:
                todo = await pending(conn)
                for migration in todo:
                    click.echo(f"-- {migration.filename}\n{migration.sql}")
                click.echo(f"{len(todo)} migration(s) pending")
                return
            applied = await apply_migrations(conn)
        finally:
            await conn.close()
    if applied:
        click.echo(
            f"applied {len(applied)} migration(s): " + ", ".join(m.filename for m in applied)
        )
    else:
        click.echo("schema up to date; nothing to apply")


def build_web_app(
    settings: Settings, secrets: ServiceSecrets, pool: Pool, which: AppChoice
) -> Starlette:
    """The survivor app at /, the staff app at /staff, or one of them alone."""
    apps: dict[str, Starlette] = {}
    if which in ("both", "survivor"):
        apps[""] = create_survivor_app(settings, secrets, pool=pool)
    if which in ("both", "staff"):
        apps[STAFF_PREFIX] = create_staff_app(
            settings, secrets.session, pool=pool, prefix=STAFF_PREFIX
        )
    return web.combine(apps)


def worker_jobs(settings: Settings, database_url: str) -> tuple[Job, ...]:
    """Every scheduled job, whichever package owns it; scheduled releases only where the
    worker has been given passphrases."""
    jobs: tuple[Job, ...] = (*collect_jobs.JOBS, *aggregate_jobs.JOBS)
    if settings.key_passphrase_dir is not None:
        jobs += (scheduled_releases_job(settings.key_passphrase_dir, database_url),)
    return jobs


@main.command("serve")
@click.option(
    "--app",
    "which",
    type=click.Choice(["both", "survivor", "staff"]),
    default="both",
    show_default=True,
    help="Serve the survivor app (/), the staff app (/staff), or both on one port.",
)
@run
async def serve_command(settings: Settings, which: AppChoice) -> None:
    """Run the web server on FEEDBACK_HOST:FEEDBACK_PORT."""
    sock = bind(settings.host, settings.port)
    with stop_on_signals() as stopping:
        async with ready_pool(settings, migrate_first=False) as pool:
            click.echo(f"serving {which} on {settings.public_url}")
            app = build_web_app(settings, resolve_secrets(settings), pool, which)
            await serve(app, sock, stopping)


@main.command()
@run
async def worker(settings: Settings) -> None:
    """Run scheduled jobs (each at most once per period across all workers)."""
    with stop_on_signals() as stopping:
        async with ready_database(settings, migrate_first=False) as (url, pool):
            scheduler = build_scheduler(pool, worker_jobs(settings, url))
            scheduler.start()
            click.echo(f"worker running {len(scheduler.get_jobs())} jobs; Ctrl-C stops it")
            try:
                await stopping.wait()
            finally:
                scheduler.shutdown(wait=False)


@main.command()
@run
async def demo(settings: Settings) -> None:
    """Migrate, seed a demo organisation, and run the web apps and the worker in one process."""
    sock = bind(settings.host, settings.port)
    with stop_on_signals() as stopping:
        async with ready_database(settings, migrate_first=True) as (url, pool):
            secrets = resolve_secrets(settings)
            async with pool.acquire() as conn:
                facts = await demo_module.seed(conn, settings, secrets)
            path = demo_module.write_facts(settings.data_dir, facts)
            click.echo(demo_module.describe(facts, path))
            scheduler = build_scheduler(pool, worker_jobs(settings, url))
            scheduler.start()
            try:
                app = build_web_app(settings, secrets, pool, "both")
                await serve(app, sock, stopping)
            finally:
                scheduler.shutdown(wait=False)


main.add_command(keys)
main.add_command(invitations)
main.add_command(aggregate)
main.add_command(plan)
main.add_command(users)
main.add_command(sms_sim)


@main.command("settings")
def show_settings() -> None:
    """Print the settings in effect as JSON (secrets are not shown)."""
    try:
        settings = Settings.from_env()
    except FeedbackError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    shown = {
        "database_url": "(embedded)" if settings.database_url is None else "(set)",
        "data_dir": str(settings.data_dir),
        "host": settings.host,
        "port": settings.port,
        "public_url": settings.public_url,
        "statement_timeout_ms": settings.statement_timeout_ms,
        "pool_size": settings.pool_size,
        "session_secret": "(set)" if settings.session_secret else "(generated)",
        "phone_hmac_key": "(set)" if settings.phone_hmac_key else "(generated)",
        "log_level": settings.log_level,
        "debug": settings.debug,
    }
    click.echo(json.dumps(shown, indent=2))
