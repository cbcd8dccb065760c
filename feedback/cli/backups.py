"""`feedback backup` and `feedback restore`: encrypted dumps of the whole database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from feedback.backups import backup, check_empty, ensure_roles, identity, restore
from feedback.backups import recipient as age_recipient
from feedback.cli.common import run
from feedback.cli.runtime import database
from feedback.config import Settings
from feedback.db import connect


@click.command("backup")
@click.option(
    "--to", "to", required=True, type=click.Path(path_type=Path, dir_okay=False),
    help="The file to write (never overwritten).",
)  # fmt: skip
@click.option(
    "--recipient", required=True, metavar="AGE_PUBLIC_KEY",
    help="The age public key (age1...) whose identity alone can read the backup.",
)  # fmt: skip
@run
async def backup_command(settings: Settings, to: Path, recipient: str) -> None:
    """Write the whole database to FILE, encrypted to an age public key as it is written
    (docs/operations.md says how long to keep backups, and why)."""
    key = age_recipient(recipient)
    async with database(settings) as url:
        await asyncio.to_thread(backup, url, to, key)
    click.echo(f"wrote {to} (encrypted to {recipient.strip()[:12]}...)")


@click.command("restore")
@click.option(
    "--from", "source", required=True, type=click.Path(path_type=Path, dir_okay=False),
    help="A file `feedback backup` wrote.",
)  # fmt: skip
@click.option(
    "--identity", "identity_file", required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The age identity file (AGE-SECRET-KEY-1...) of the backup's recipient.",
)  # fmt: skip
@run
async def restore_command(settings: Settings, source: Path, identity_file: Path) -> None:
    """Load a backup into the configured database, which must be empty."""
    key = identity(identity_file)
    async with database(settings) as url:
        conn = await connect(url)
        try:
            await check_empty(conn)
            await ensure_roles(conn)
            server_major = int(await conn.fetchval("SHOW server_version_num")) // 10000
        finally:
            await conn.close()
        await asyncio.to_thread(restore, url, source, key, server_major)
    click.echo(
        f"restored {source}; now run `feedback migrate`: it brings the schema up to date, and "
        "withholds again what a dump does not carry (temporary tables for every role)"
    )
