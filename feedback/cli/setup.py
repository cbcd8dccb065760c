"""`feedback organisations`, `feedback programs` and `feedback surveys`: what an operator sets
up before survivors can answer (the README's production steps)."""

from __future__ import annotations

import uuid
from pathlib import Path

import click

from feedback.cli.common import organisation_option, pick_organisation, run
from feedback.cli.runtime import ready_pool
from feedback.config import Settings
from feedback.db import Connection
from feedback.organisations import (
    change_organisation,
    create_organisation,
    create_program,
    organisations,
    programs,
    rename_program,
)
from feedback.publish.audit import record
from feedback.survey_versions import read_definition, store_survey, surveys

# Setup runs as the database owner: only it may create organisations.
OWNER = None


async def _audit(conn: Connection, organisation_id: uuid.UUID, action: str, subject: str) -> None:
    await record(
        conn,
        organisation_id=organisation_id,
        user_id=None,
        action=action,
        subject=subject,
        details={"via": "cli"},
    )


@click.group("organisations")
def organisations_group() -> None:
    """Organisations: each has its own keys, surveys, programs, staff and privacy budget."""


@organisations_group.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The name staff see (survivors never do).")
@run
async def organisations_create(settings: Settings, slug: str, name: str) -> None:
    """Create an organisation whose short name is SLUG (lower-case letters, digits, dashes)."""
    async with (
        ready_pool(settings, role=OWNER) as pool,
        pool.acquire() as conn,
        conn.transaction(),
    ):
        found = await create_organisation(conn, slug, name)
        await _audit(conn, found, "organisation.create", slug)
    click.echo(f"created organisation {slug}")
    click.echo(
        f"next: `feedback programs create SLUG --name NAME -o {slug}`, "
        f"`feedback surveys load FILE -o {slug}`, `feedback keys create -o {slug}`"
    )


@organisations_group.command("list")
@run
async def organisations_list(settings: Settings) -> None:
    """List the organisations with their settings."""
    async with ready_pool(settings, role=OWNER) as pool, pool.acquire() as conn:
        rows = await organisations(conn)
    if not rows:
        click.echo("no organisations yet: `feedback organisations create SLUG --name NAME`")
    for row in rows:
        click.echo(
            f"{row['slug']}: {row['name']}; {row['programs']} program(s); comments "
            f"{'on' if row['comments_enabled'] else 'off'}; SMS number "
            f"{row['sms_number'] or 'none'}, name {row['sms_name'] or 'none'}, help line "
            f"{'set' if row['sms_help_text'] else 'none'}; epsilon {row['epsilon_per_year']} "
            "a year"
        )


@organisations_group.command("set")
@organisation_option
@click.option("--name", help="The name staff see.")
@click.option("--sms-name", help="The name SMS replies may give (1-40; '' for none).")
@click.option(
    "--sms-help", help="What a HELP text message answers (1-140; '' for the neutral default)."
)
@click.option(
    "--sms-number", help="The number survivors text, with its country code ('' for none)."
)
@click.option("--comments/--no-comments", default=None, help="Show the comment box, or not.")
@run
async def organisations_set(
    settings: Settings,
    organisation: str | None,
    name: str | None,
    sms_name: str | None,
    sms_help: str | None,
    sms_number: str | None,
    comments: bool | None,
) -> None:
    """Change an organisation's settings. The yearly privacy budget is set with `feedback
    plan budget`."""
    given = {
        "name": name,
        "sms_name": sms_name,
        "sms_help": sms_help,
        "sms_number": sms_number,
        "comments": comments,
    }
    changes = {key: value for key, value in given.items() if value is not None}
    async with ready_pool(settings, role=OWNER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        async with conn.transaction():
            await change_organisation(conn, org.id, changes)
            await _audit(conn, org.id, "organisation.set", ",".join(sorted(changes)))
    click.echo(f"{org.slug}: set {', '.join(sorted(changes))}")


@click.group("programs")
def programs_group() -> None:
    """Programs: the services survivors give feedback about."""


@programs_group.command("create")
@organisation_option
@click.argument("slug")
@click.option("--name", required=True, help="The program's name, as staff see it.")
@run
async def programs_create(
    settings: Settings, organisation: str | None, slug: str, name: str
) -> None:
    """Create a program whose short name is SLUG."""
    async with ready_pool(settings, role=OWNER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        async with conn.transaction():
            await create_program(conn, org.id, slug, name)
            await _audit(conn, org.id, "program.create", slug)
    click.echo(f"created program {slug} in {org.slug}")


@programs_group.command("rename")
@organisation_option
@click.argument("slug")
@click.option("--name", required=True, help="The new name (the short name stays).")
@run
async def programs_rename(
    settings: Settings, organisation: str | None, slug: str, name: str
) -> None:
    """Give program SLUG a new name."""
    async with ready_pool(settings, role=OWNER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        async with conn.transaction():
            await rename_program(conn, org.id, slug, name)
            await _audit(conn, org.id, "program.rename", slug)
    click.echo(f"renamed program {slug}")


@programs_group.command("list")
@organisation_option
@run
async def programs_list(settings: Settings, organisation: str | None) -> None:
    """List an organisation's programs."""
    async with ready_pool(settings, role=OWNER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        rows = await programs(conn, org.id)
    if not rows:
        click.echo(f"no programs in {org.slug} yet: `feedback programs create SLUG --name NAME`")
    for row in rows:
        click.echo(f"{row['slug']}: {row['name']} (languages {', '.join(row['languages'])})")


@click.group("surveys")
def surveys_group() -> None:
    """Survey definitions: versioned TOML files (see feedback/surveys/rights-based.toml)."""


@surveys_group.command("load")
@organisation_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@run
async def surveys_load(settings: Settings, organisation: str | None, file: Path) -> None:
    """Check and store the definition in FILE. The same definition again stores nothing; a
    changed wording becomes the next version; changed questions need a new version number."""
    survey, text = read_definition(file)
    async with ready_pool(settings, role=OWNER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        async with conn.transaction():
            loaded = await store_survey(conn, org.id, survey, text)
            if loaded.created:
                subject = f"{survey.slug} v{loaded.survey.version}"
                await _audit(conn, org.id, "survey.load", subject)
        older = await conn.fetchval(
            """
            SELECT count(*) FROM release_plans p JOIN surveys s ON s.id = p.survey_id
             WHERE p.organisation_id = $1 AND s.slug = $2 AND s.version < $3
               AND p.budget_year >= extract(year FROM now())
            """,
            org.id,
            survey.slug,
            loaded.survey.version,
        )
    stored = loaded.survey
    if not loaded.created:
        click.echo(f"{stored.slug} version {stored.version} is stored already: nothing changed")
    elif stored.version != loaded.asked_version:
        click.echo(
            f"stored {stored.slug} as version {stored.version}: version {loaded.asked_version} "
            "holds the earlier wording, kept for the answers given under it"
        )
    else:
        click.echo(
            f"stored {stored.slug} version {stored.version} ({len(stored.questions)} questions)"
        )
    if loaded.created and older:
        click.echo(
            f"note: {older} plan line(s) of this year or later release an earlier version; "
            f"links made from now on ask version {stored.version}, whose answers only lines "
            "planned for it count (`feedback plan advise --apply` or `feedback plan add`)"
        )


@surveys_group.command("list")
@organisation_option
@run
async def surveys_list(settings: Settings, organisation: str | None) -> None:
    """List the stored survey versions."""
    async with ready_pool(settings, role=OWNER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        rows = await surveys(conn, org.id)
    if not rows:
        click.echo(f"no surveys in {org.slug} yet: `feedback surveys load FILE`")
    for row in rows:
        click.echo(
            f"{row['slug']} v{row['version']}: {row['title']} ({row['questions']} questions; "
            f"stored {row['created_on']:%Y-%m-%d})"
        )
