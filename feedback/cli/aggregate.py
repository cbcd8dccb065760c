"""`feedback aggregate`: one release now, for one declared period."""

from __future__ import annotations

import uuid
from pathlib import Path

import click

from feedback.aggregate.keys import UnlockedKey, read_key_file, unlock
from feedback.aggregate.periods import Period
from feedback.aggregate.privacy import Layout
from feedback.aggregate.releases import Scope, make_release
from feedback.aggregate.unseal import counter
from feedback.cli.common import (
    organisation_option,
    passphrase_file_option,
    pick_organisation,
    read_passphrase,
    run,
)
from feedback.cli.runtime import ready_database
from feedback.config import Settings
from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.keyrows import select_keys
from feedback.surveys import from_json
from feedback.wrapping import WrongPassphrase


async def _keys(
    conn: Connection, organisation_id: uuid.UUID, passphrase: str | None, key_file: Path | None
) -> dict[uuid.UUID, UnlockedKey]:
    """Every key that opens: from the key file, or each wrapped key the passphrase unwraps."""
    if key_file is not None:
        key = read_key_file(key_file)
        return {key.id: key}
    unlocked = {}
    for row in await select_keys(conn, "collection_keys", organisation_id=organisation_id):
        if row.wrapped is None:
            continue
        try:
            key = await unlock(
                conn, organisation_id=organisation_id, passphrase=passphrase or "", key_id=row.id
            )
        except WrongPassphrase:
            continue
        unlocked[key.id] = key
    if not unlocked:
        raise WrongPassphrase("wrong passphrase: no key of this organisation opens with it")
    return unlocked


@click.command()
@organisation_option
@click.option("--period", required=True, help="2026-07, 2026-Q3 or 2026.")
@click.option(
    "--program", "-p", metavar="SLUG", help="One program (default: the whole organisation)."
)
@click.option("--survey", "survey_slug", default="rights-based", show_default=True)
@click.option(
    "--question",
    "-q",
    "questions",
    multiple=True,
    help="Questions to release (default: all but demographics and the comment).",
)
@click.option("--breakdown", help="A demographic question to break the tables down by.")
@click.option(
    "--key-file", type=click.Path(path_type=Path), help="An exported key file, for offline use."
)
@passphrase_file_option
@run
async def aggregate(
    settings: Settings,
    organisation: str | None,
    period: str,
    program: str | None,
    survey_slug: str,
    questions: tuple[str, ...],
    breakdown: str | None,
    key_file: Path | None,
    passphrase_file: Path | None,
) -> None:
    """Open, count and release one period (or show the release already made for it)."""
    declared = Period.parse(period)
    async with (
        ready_database(settings, migrate_first=False) as (url, pool),
        pool.acquire() as conn,
    ):
        org = await pick_organisation(conn, organisation)
        settings_row = await conn.fetchrow(
            "SELECT epsilon_per_release, release_threshold FROM organisations WHERE id = $1",
            org.id,
        )
        if settings_row is None:
            raise FeedbackError(f"organisation {org.slug} vanished")
        survey_row = await conn.fetchrow(
            "SELECT id, definition FROM surveys WHERE organisation_id = $1 AND slug = $2 "
            "ORDER BY version DESC LIMIT 1",
            org.id,
            survey_slug,
        )
        if survey_row is None:
            raise FeedbackError(f"{org.slug} has no survey {survey_slug!r}")
        program_id = None
        if program is not None:
            program_id = await conn.fetchval(
                "SELECT id FROM programs WHERE organisation_id = $1 AND slug = $2", org.id, program
            )
            if program_id is None:
                raise FeedbackError(f"no program {program!r} in {org.slug}")
        survey = from_json(survey_row["definition"])
        chosen = list(questions) or [
            q.id for q in survey.questions if q.type != "comment" and not q.demographic
        ]
        layout = Layout.plan(survey, chosen, breakdown)
        scope = Scope(org.id, program_id, survey_row["id"], declared, breakdown)
        passphrase = None if key_file else read_passphrase(passphrase_file, confirm=False)
        keys = await _keys(conn, org.id, passphrase, key_file)

        made = await make_release(
            conn,
            scope,
            layout=layout,
            epsilon=float(settings_row["epsilon_per_release"]),
            threshold=settings_row["release_threshold"],
            count=counter(conn, scope, layout=layout, keys=keys, database_url=url),
        )
    state = "made" if made.created else "already made; nothing was spent"
    click.echo(f"release {made.id} for {declared} ({state})")
    click.echo(
        f"  epsilon {made.epsilon}, discrete Laplace scale {made.noise_scale}, k {made.threshold}"
    )
    click.echo(f"  95% noise half-width per cell: +/- {made.cells['half_width_95']:.1f}")
    click.echo(f"  quarantined submissions: {made.metadata.get('quarantined', 0)}")
