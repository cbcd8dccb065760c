"""`feedback publications`: schedules, publishing now, corrections and exports of the signed
publications funders receive."""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from pathlib import Path

import click

from feedback.bundles import BundleError, unpack
from feedback.cli.common import (
    find_program,
    organisation_option,
    passphrase_file_option,
    pick_organisation,
    read_passphrase,
    run,
)
from feedback.cli.publishing import PublishError, make_missing_releases, publish
from feedback.cli.runtime import ready_database, ready_pool
from feedback.config import Settings
from feedback.db import WORKER
from feedback.errors import FeedbackError
from feedback.minisign import PublicKey
from feedback.schedules import add_schedule, schedule_of, schedules_of
from feedback.stats.periods import GRANULARITIES, Period


@click.group()
def publications_group() -> None:
    """Signed publications for funders: schedules, publishing, corrections, exports."""


@publications_group.command("schedule")
@organisation_option
@click.argument("series")
@click.option("--every", "granularity", type=click.Choice(GRANULARITIES), required=True)
@click.option(
    "--day",
    type=click.IntRange(1, 28),
    default=5,
    show_default=True,
    help="The day of the month after each period ends on which it is published.",
)
@click.option(
    "--program",
    "-p",
    "programs",
    multiple=True,
    metavar="SLUG",
    help="A program the series shows (repeat it); every program when left out.",
)
@run
async def schedule_command(
    settings: Settings,
    organisation: str | None,
    series: str,
    granularity: str,
    day: int,
    programs: tuple[str, ...],
) -> None:
    """Add the publication series SERIES (for example: feedback publications schedule
    quarterly --every quarter --day 5)."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        ids = [await find_program(conn, org.id, slug) for slug in programs] or None
        made = await add_schedule(conn, org.id, series, granularity, day, ids)
    today = dt.datetime.now(dt.UTC).date()
    period = made.latest_due(today)
    click.echo(
        f"series {series}: {made.describe()}; the worker publishes {period} (due "
        f"{made.due(period)}) when it next runs, if it holds the key passphrase"
    )


@publications_group.command("list")
@organisation_option
@run
async def list_command(settings: Settings, organisation: str | None) -> None:
    """Every series and its publications, newest first, and any not made and why."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        found = {s.series: s.describe() for s in await schedules_of(conn, org.id)}
        for row in await conn.fetch(
            "SELECT DISTINCT series FROM publications WHERE organisation_id = $1", org.id
        ):
            found.setdefault(row["series"], "no schedule")
        if not found:
            click.echo("no series: add one with `feedback publications schedule`")
        for series, described in sorted(found.items()):
            click.echo(f"{series}: {described}")
            for row in await conn.fetch(
                """
                SELECT sequence, period, issued, next_due, corrects, why FROM publications
                 WHERE organisation_id = $1 AND series = $2 ORDER BY sequence DESC
                """,
                org.id,
                series,
            ):
                correction = (
                    f", corrects {row['corrects']}: {row['why']}" if row["corrects"] else ""
                )
                click.echo(
                    f"  {row['sequence']}  {row['period']}  issued {row['issued']}  "
                    f"next due {row['next_due']}{correction}"
                )
            for row in await conn.fetch(
                """
                SELECT period, outcome FROM publication_requests
                 WHERE organisation_id = $1 AND series = $2 AND publication_id IS NULL
                   AND settled_on IS NOT NULL
                 ORDER BY seq DESC LIMIT 5
                """,
                org.id,
                series,
            ):
                click.echo(f"  not made: {row['period']}: {row['outcome']}")


@publications_group.command("publish")
@organisation_option
@click.argument("series")
@click.option("--period", help="The period (default: the latest whose date has come).")
@click.option("--corrects", type=int, metavar="SEQUENCE", help="The publication this corrects.")
@click.option("--why", help="Why it is corrected (shown in the correction).")
@passphrase_file_option
@run
async def publish_command(
    settings: Settings,
    organisation: str | None,
    series: str,
    period: str | None,
    corrects: int | None,
    why: str | None,
    passphrase_file: Path | None,
) -> None:
    """Publish SERIES now: make the period's missing planned releases (the budget allowing),
    then build, sign and store the publication. Publishing a period again returns the one
    made; a correction (--corrects N --why TEXT) is a new publication of N's period."""
    if (corrects is None) != (why is None):
        raise PublishError("a correction needs both --corrects and --why")
    passphrase = read_passphrase(passphrase_file, confirm=False)
    today = dt.datetime.now(dt.UTC).date()
    async with (
        ready_database(settings, role=WORKER) as (url, pool),
        pool.acquire() as conn,
    ):
        org = await pick_organisation(conn, organisation)
        schedule = await schedule_of(conn, org.id, series)
        chosen = Period.parse(period) if period else schedule.latest_due(today)
        refused = await make_missing_releases(conn, schedule, chosen, passphrase, url)
        for why_not in refused:
            click.echo(f"note: release refused: {why_not}", err=True)
        made = await publish(
            conn, schedule, chosen, passphrase=passphrase, issued=today, corrects=corrects, why=why
        )
    state = "published" if made.created else "already published"
    click.echo(f"{state}: {series} {made.sequence} ({made.period})")


@publications_group.command("export")
@organisation_option
@click.argument("series")
@click.argument("sequence", type=int)
@click.option(
    "--to",
    "target",
    type=click.Path(path_type=Path),
    required=True,
    help="A folder to create, or a file ending .tar.gz.",
)
@run
async def export_command(
    settings: Settings, organisation: str | None, series: str, sequence: int, target: Path
) -> None:
    """Write publication SEQUENCE of SERIES as a folder or a .tar.gz, as signed."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        packed = await conn.fetchval(
            "SELECT archive FROM publications "
            "WHERE organisation_id = $1 AND series = $2 AND sequence = $3",
            org.id,
            series,
            sequence,
        )
    if packed is None:
        raise FeedbackError(
            f"no publication {sequence} of {series}: see `feedback publications list`"
        )
    click.echo(f"wrote {export(packed, target)}")


def export(packed: bytes, target: Path) -> Path:
    """The archive written as it is (``target`` ends .tar.gz) or unpacked into the new folder
    ``target``."""
    if target.exists():
        raise FeedbackError(f"{target} exists already: choose a new name")
    if target.name.endswith(".tar.gz"):
        target.write_bytes(packed)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        unpack(io.BytesIO(packed), Path(scratch), target.name)
        found = list(Path(scratch).iterdir())
        if len(found) != 1 or not found[0].is_dir():
            raise BundleError(f"{target.name}: a bundle's archive holds its one folder")
        found[0].rename(target)
    return target


@publications_group.command("key")
@organisation_option
@run
async def key_command(settings: Settings, organisation: str | None) -> None:
    """Print the organisation's public signing key in minisign's format (give it to funders,
    who check publications with it)."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        key = await conn.fetchval(
            "SELECT public_key FROM signing_keys "
            "WHERE organisation_id = $1 AND retired_week IS NULL",
            org.id,
        )
    if key is None:
        raise FeedbackError("the organisation has no signing key: run `feedback keys create`")
    public = PublicKey.of(key)
    click.echo(public.file(f"{org.slug} signing key {public.hex_id}"), nl=False)
