"""`feedback users`: staff accounts from the command line (the first admin, above all)."""

from __future__ import annotations

import click

from feedback.cli.common import organisation_option, pick_organisation, run
from feedback.cli.runtime import ready_pool
from feedback.config import Settings
from feedback.db import STAFF
from feedback.errors import FeedbackError
from feedback.publish.accounts import ROLES, Role, create_user, make_password_link


@click.group()
def users() -> None:
    """Staff accounts: admins, managers and viewers."""


@users.command("create")
@organisation_option
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(ROLES), default="admin", show_default=True)
@click.option("--name", help="How the person is shown (optional).")
@click.option(
    "--program",
    "-p",
    "programs",
    multiple=True,
    metavar="SLUG",
    help="A program a manager or viewer sees (repeat).",
)
@run
async def create(
    settings: Settings,
    organisation: str | None,
    email: str,
    role: Role,
    name: str | None,
    programs: tuple[str, ...],
) -> None:
    """Create an account and print the one-time link with which its owner chooses a
    passphrase (valid for 7 days; only its hash is kept)."""
    async with ready_pool(settings, role=STAFF) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        program_ids = []
        for slug in programs:
            program_id = await conn.fetchval(
                "SELECT id FROM programs WHERE organisation_id = $1 AND slug = $2", org.id, slug
            )
            if program_id is None:
                raise FeedbackError(f"no program {slug!r} in {org.slug}")
            program_ids.append(program_id)
        user_id = await create_user(
            conn,
            organisation_id=org.id,
            email=email,
            role=role,
            display_name=name,
            programs=program_ids,
        )
        token = await make_password_link(conn, organisation_id=org.id, user_id=user_id)
        await conn.execute(
            "INSERT INTO audit_log (organisation_id, action, subject, details) "
            "VALUES ($1, 'user.create', $2, $3)",
            org.id,
            email.lower(),
            {"role": role, "via": "cli"},
        )
    click.echo(f"created {role} {email.lower()} in {org.slug}")
    link = f"{settings.staff_url}/set-password/{token}"
    click.echo(f"set-password link (once, 7 days): {link}")
