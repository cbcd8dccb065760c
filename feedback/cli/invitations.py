"""`feedback invitations`: batches of single-use links (with a printable QR sheet) and open
links, for programs that do not use the dashboard yet."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from feedback.cli.common import find_program, organisation_option, pick_organisation, run
from feedback.cli.runtime import ready_pool
from feedback.config import Settings
from feedback.db import STAFF, Connection
from feedback.errors import FeedbackError
from feedback.publish.invitations import create_batch, create_open_link, qr_sheet_svg, survey_url
from feedback.secretfiles import check_shared, resolve_secrets


@click.group()
def invitations() -> None:
    """Make invitation links for a program."""


async def _sms_code_key(conn: Connection, settings: Settings) -> bytes:
    """The key SMS codes are hashed under: the survivor app must have the same one."""
    key = resolve_secrets(settings).sms_code_key
    await check_shared(conn, {"SMS_CODE_KEY": key})
    return key


@invitations.command()
@organisation_option
@click.option("--program", "-p", required=True, metavar="SLUG", help="The program.")
@click.option("--count", "-n", default=20, show_default=True, help="How many single-use links.")
@click.option("--days", default=90, show_default=True, help="Days until the links expire.")
@click.option(
    "--sheet",
    type=click.Path(path_type=Path),
    help="Also write a printable A4 sheet of QR codes (SVG) to this new file.",
)
@click.option("--sms", is_flag=True, help="SMS start codes (ten digits) instead of links.")
@run
async def batch(
    settings: Settings,
    organisation: str | None,
    program: str,
    count: int,
    days: int,
    sheet: Path | None,
    sms: bool,
) -> None:
    """Print a batch of single-use survey links or SMS start codes (shown once: only their
    hashes are kept)."""
    if sms and sheet is not None:
        raise FeedbackError("a QR sheet is for links; SMS codes are texted, not scanned")
    async with ready_pool(settings, role=STAFF) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        program_id = await find_program(conn, org.id, program)
        made = await create_batch(
            conn,
            program_id=program_id,
            count=count,
            medium="sms" if sms else "link",
            lifetime=dt.timedelta(days=days),
            sms_code_key=await _sms_code_key(conn, settings) if sms else None,
        )
    if sms:
        click.echo("\n".join(made.tokens))
        return
    urls = [survey_url(settings.public_url, token) for token in made.tokens]
    if sheet is not None:
        title = f"{program}: {count} single-use links, valid until {made.expires_on:%Y-%m-%d}"
        try:
            fd = os.open(sheet, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise FeedbackError(f"{sheet} already exists: choose a new file name") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(qr_sheet_svg(urls, title=title))
        click.echo(f"wrote the QR sheet to {sheet}", err=True)
    click.echo("\n".join(urls))


@invitations.command("open-link")
@organisation_option
@click.option("--program", "-p", required=True, metavar="SLUG", help="The program.")
@click.option("--sms", is_flag=True, help="A program-wide SMS start code instead of a link.")
@run
async def open_link(settings: Settings, organisation: str | None, program: str, sms: bool) -> None:
    """Print a new open link for posters, or a program-wide SMS code (many answers, rate
    limited, flagged in reports)."""
    async with ready_pool(settings, role=STAFF) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        program_id = await find_program(conn, org.id, program)
        token = await create_open_link(
            conn,
            program_id=program_id,
            medium="sms" if sms else "link",
            sms_code_key=await _sms_code_key(conn, settings) if sms else None,
        )
    click.echo(token if sms else survey_url(settings.public_url, token))
