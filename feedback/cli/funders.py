"""`feedback funders`: funders and their private links, as on the staff pages."""

from __future__ import annotations

import uuid

import click

from feedback.cli.common import find_program, organisation_option, pick_organisation, run
from feedback.cli.runtime import ready_pool
from feedback.config import Settings
from feedback.db import STAFF
from feedback.errors import FeedbackError
from feedback.publish.audit import record
from feedback.publish.funders import add_funder, funders_of, revoke_funder


@click.group("funders")
def funders_group() -> None:
    """Funders: the programs each may see, and their private links."""


@funders_group.command("add")
@organisation_option
@click.argument("name")
@click.option("--email", help="For your records (optional).")
@click.option(
    "--program",
    "-p",
    "programs",
    multiple=True,
    required=True,
    metavar="SLUG",
    help="A program the funder may see (repeat it).",
)
@run
async def add_command(
    settings: Settings,
    organisation: str | None,
    name: str,
    email: str | None,
    programs: tuple[str, ...],
) -> None:
    """Add the funder NAME and print its private link, once (only its hash is kept)."""
    async with ready_pool(settings, role=STAFF) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        ids = [await find_program(conn, org.id, slug) for slug in programs]
        async with conn.transaction():
            funder_id, token = await add_funder(conn, org.id, name, email, ids)
            await record(
                conn,
                organisation_id=org.id,
                user_id=None,
                action="funder.add",
                subject=str(funder_id),
                details={"name": name, "by": "cli"},
            )
    click.echo(f"funder {funder_id} added; its private link (shown once, send it privately):")
    click.echo(f"  {settings.staff_url}/funder/{token}/")


@funders_group.command("list")
@organisation_option
@run
async def list_command(settings: Settings, organisation: str | None) -> None:
    """Every funder, its programs, and whether its link was revoked."""
    async with ready_pool(settings, role=STAFF) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        found = await funders_of(conn, org.id)
    if not found:
        click.echo("no funder: add one with `feedback funders add`")
    for f in found:
        state = f"revoked {f.revoked_on}" if f.revoked_on else "link active"
        click.echo(f"{f.id}  {f.name}  ({', '.join(f.programs)})  {state}")


@funders_group.command("revoke")
@organisation_option
@click.argument("funder", type=click.UUID)
@run
async def revoke_command(settings: Settings, organisation: str | None, funder: uuid.UUID) -> None:
    """Revoke FUNDER's link (its id, from `feedback funders list`): it opens nothing again."""
    async with ready_pool(settings, role=STAFF) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        async with conn.transaction():
            if not await revoke_funder(conn, org.id, funder):
                raise FeedbackError(
                    f"no funder {funder} in {org.slug}: see `feedback funders list`"
                )
            await record(
                conn,
                organisation_id=org.id,
                user_id=None,
                action="funder.revoke",
                subject=str(funder),
                details={"by": "cli"},
            )
    click.echo(f"funder {funder}'s link is revoked")
