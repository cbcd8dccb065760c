"""The ``feedback`` command: the one place that wires collect, aggregate and publish together.

Every command reads settings from ``FEEDBACK_*`` variables (see the README). Errors we expect
print one line and exit 1.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

import click

from feedback import __version__
from feedback.cli import demo as demo_module
from feedback.cli.aggregate import aggregate
from feedback.cli.backups import backup_command, restore_command
from feedback.cli.comments import comments
from feedback.cli.common import run
from feedback.cli.funders import funders_group
from feedback.cli.invitations import invitations
from feedback.cli.jobs import jobs
from feedback.cli.keys import keys
from feedback.cli.networks import network_group
from feedback.cli.plan import plan
from feedback.cli.publications import publications_group
from feedback.cli.runtime import (
    bind,
    check_schema,
    check_statistics,
    database,
    ready_database,
    serve,
    server_warnings,
    stop_on_signals,
)
from feedback.cli.setup import organisations_group, programs_group, surveys_group
from feedback.cli.sms_sim import sms_sim
from feedback.cli.users import users
from feedback.cli.verify import verify_command
from feedback.cli.wiring import AppChoice, build_web_app, worker_jobs, worker_phone_key
from feedback.config import Settings
from feedback.db import STAFF, SURVIVOR, WORKER, Role, connect
from feedback.errors import FeedbackError
from feedback.exposure import (
    WITHHOLD_SQL,
    readable_statistics,
    summary,
    withhold_command,
    withhold_statistics,
)
from feedback.jobs import build_scheduler
from feedback.migrate import apply_migrations, pending
from feedback.secretfiles import resolve_secrets

__all__ = ["build_web_app", "main", "worker_jobs"]

log = logging.getLogger("feedback")
SCHEMA_CHECKED_AS: dict[AppChoice, Role] = {"both": SURVIVOR, "survivor": SURVIVOR, "staff": STAFF}


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
                click.echo(f"{len(todo)} migration(s) pending, then {WITHHOLD_SQL.name}")
                return
            applied = await apply_migrations(conn)
            await withhold_statistics(conn)
            for warning in await server_warnings(conn):
                click.echo(f"warning: {warning}", err=True)
            left = list(
                dict.fromkeys(
                    await readable_statistics(conn, STAFF)
                    + await readable_statistics(conn, SURVIVOR)
                )
            )
        finally:
            await conn.close()
    if applied:
        click.echo(
            f"applied {len(applied)} migration(s): " + ", ".join(m.filename for m in applied)
        )
    else:
        click.echo("schema up to date; nothing to apply")
    if left:
        click.echo(
            "warning: the apps' roles can still read statistics that move with answers "
            f"({summary(left)}), which time each answer, and only a superuser can withhold "
            f"them: have one run `{withhold_command(url)}` (docs/operations.md, Statistics)",
            err=True,
        )


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
        async with database(settings) as url:
            await check_schema(url, role=SCHEMA_CHECKED_AS[which], migrate_first=False)
            if which != "survivor":
                await check_statistics(url, settings)
            click.echo(f"serving {which} on {settings.public_url}")
            settings = dataclasses.replace(settings, database_url=url)
            app = build_web_app(settings, resolve_secrets(settings), which)
            await serve(app, sock, stopping)


@main.command()
@run
async def worker(settings: Settings) -> None:
    """Run scheduled jobs (never two runs of one job at once across all workers)."""
    with stop_on_signals() as stopping:
        async with ready_database(settings, role=WORKER) as (url, pool):
            phone_hmac = await worker_phone_key(settings, pool)
            scheduler = build_scheduler(pool, worker_jobs(settings, url, phone_hmac))
            scheduler.start()
            click.echo(f"worker running {len(scheduler.get_jobs())} jobs; Ctrl-C stops it")
            try:
                await stopping.wait()
            finally:
                scheduler.shutdown(wait=False)


@main.command()
@run
async def demo(settings: Settings) -> None:
    """Migrate, seed a demo organisation, and run the web apps and the worker in one process
    (each with its own database role, as they would be in separate processes)."""
    sock = bind(settings.host, settings.port)
    with stop_on_signals() as stopping:
        async with ready_database(settings, role=WORKER, migrate_first=True) as (url, pool):
            await check_statistics(url, settings)
            secrets = resolve_secrets(settings)
            owner = await connect(url)  # the seed is set-up work: the migrations' own login
            try:
                facts = await demo_module.seed(owner, settings, secrets)
            finally:
                await owner.close()
            path = demo_module.write_facts(settings.data_dir, facts)
            click.echo(demo_module.describe(facts, path))
            scheduler = build_scheduler(pool, worker_jobs(settings, url, secrets.phone_hmac))
            scheduler.start()
            try:
                settings = dataclasses.replace(settings, database_url=url)
                await serve(build_web_app(settings, secrets), sock, stopping)
            finally:
                scheduler.shutdown(wait=False)


main.add_command(organisations_group)
main.add_command(verify_command)
main.add_command(backup_command)
main.add_command(restore_command)
main.add_command(programs_group)
main.add_command(surveys_group)
main.add_command(keys)
main.add_command(invitations)
main.add_command(aggregate)
main.add_command(comments)
main.add_command(plan)
main.add_command(publications_group)
main.add_command(network_group)
main.add_command(funders_group)
main.add_command(users)
main.add_command(sms_sim)
main.add_command(jobs)


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
        "staff_url": settings.staff_url,
        "trusted_proxies": ",".join(str(n) for n in settings.trusted_proxies),
        "statement_timeout_ms": settings.statement_timeout_ms,
        "pool_size": settings.pool_size,
        "session_secret": "(set)" if settings.session_secret else "(generated)",
        "phone_hmac_key": "(set)" if settings.phone_hmac_key else "(generated)",
        "sms_code_key": "(set)" if settings.sms_code_key else "(generated)",
        "sms_auth_token": "(set)" if settings.sms_auth_token else "(generated)",
        "vonage": "(set)" if settings.vonage else "(off)",
        "sms_idle_minutes": settings.sms_idle_minutes,
        "key_passphrase_dir": str(settings.key_passphrase_dir or ""),
        "mix_hours": int(settings.mix_every.total_seconds() // 3600),
        "insecure_test_kdf": settings.insecure_test_kdf,
        "accept_visible_statistics": settings.accept_visible_statistics,
        "quick_exit_url": settings.quick_exit_url,
        "log_level": settings.log_level,
        "debug": settings.debug,
    }
    click.echo(json.dumps(shown, indent=2))
