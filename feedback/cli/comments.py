"""`feedback comments`: the key holder reads an ended period's comments."""

from __future__ import annotations

from pathlib import Path

import click

from feedback.aggregate.comments import read_comments
from feedback.cli.aggregate import unlocked_keys
from feedback.cli.common import (
    find_program,
    key_file_option,
    organisation_option,
    passphrase_file_option,
    pick_organisation,
    run,
)
from feedback.cli.runtime import ready_database
from feedback.config import Settings
from feedback.db import WORKER
from feedback.stats.periods import Period


@click.command()
@organisation_option
@click.option(
    "--period", required=True, help="2026-07, 2026-Q3, 2026-H2 or 2026 (it must have ended)."
)
@click.option("--program", "-p", metavar="SLUG", help="Only this program's comments.")
@key_file_option
@passphrase_file_option
@run
async def comments(
    settings: Settings,
    organisation: str | None,
    period: str,
    program: str | None,
    key_file: Path | None,
    passphrase_file: Path | None,
) -> None:
    """Print an ended period's comments, shuffled and undated, when there are at least as many
    as a release's threshold (else none). They are printed here only: nothing is stored."""
    declared = Period.parse(period)
    async with ready_database(settings, role=WORKER) as (_, pool), pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        program_uuid = None if program is None else await find_program(conn, org.id, program)
        keys = await unlocked_keys(conn, org.id, passphrase_file, key_file)
        found = await read_comments(
            conn, organisation_id=org.id, program_id=program_uuid, period=declared, keys=keys
        )
    click.echo(f"Comments of {declared}, in a random order:\n")
    for comment in found:
        click.echo(f"- {comment}\n")
