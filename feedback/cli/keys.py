"""`feedback keys`: the key ceremony, rotation, listing and offline export."""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path

import click

from feedback import keyrows
from feedback.aggregate import keys as collection_keys
from feedback.aggregate import signing
from feedback.cli.common import (
    organisation_option,
    passphrase_file_option,
    pick_organisation,
    read_passphrase,
    run,
)
from feedback.cli.runtime import ready_pool
from feedback.config import Settings
from feedback.db import WORKER
from feedback.wrapping import kdf_cost


@click.group()
def keys() -> None:
    """Create, rotate, list and export an organisation's keys."""


def fingerprint(public_key: bytes) -> str:
    digest = hashlib.sha256(public_key).hexdigest()[:16]
    return ":".join(digest[i : i + 4] for i in range(0, 16, 4))


@keys.command()
@organisation_option
@passphrase_file_option
@run
async def create(
    settings: Settings, organisation: str | None, passphrase_file: Path | None
) -> None:
    """Make the collection key pair and the signing key (private halves wrapped)."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        existing = await keyrows.select_keys(conn, "collection_keys", organisation_id=org.id)
        if existing:
            raise click.ClickException(
                f"{org.slug} already has keys: use `feedback keys rotate` to replace them"
            )
        passphrase = read_passphrase(passphrase_file, confirm=True)
        cost = kdf_cost(insecure_test=settings.insecure_test_kdf)
        async with conn.transaction():
            key_id = await collection_keys.create_collection_key(
                conn, organisation_id=org.id, passphrase=passphrase, cost=cost
            )
            await signing.create_signing_key(
                conn, organisation_id=org.id, passphrase=passphrase, cost=cost
            )
        row = await keyrows.select_key(
            conn, "collection_keys", organisation_id=org.id, key_id=key_id
        )
    click.echo(f"created collection key {key_id} for {org.slug}")
    click.echo(f"  public key (base64): {base64.b64encode(row.public_key).decode()}")
    click.echo(f"  fingerprint:         {fingerprint(row.public_key)}")
    click.echo("Keep the passphrase safe: without it, sealed answers can never be opened.")


@keys.command()
@organisation_option
@click.option("--signing", "rotate_signing", is_flag=True, help="Rotate the signing key instead.")
@passphrase_file_option
@run
async def rotate(
    settings: Settings,
    organisation: str | None,
    rotate_signing: bool,
    passphrase_file: Path | None,
) -> None:
    """Make a new current key; old keys stay to open what they sealed."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        passphrase = read_passphrase(passphrase_file, confirm=True)
        cost = kdf_cost(insecure_test=settings.insecure_test_kdf)
        if rotate_signing:
            key_id = await signing.create_signing_key(
                conn, organisation_id=org.id, passphrase=passphrase, retire_current=True, cost=cost
            )
            click.echo(f"new signing key {key_id} for {org.slug}; the old one is retired")
            return
        key_id = await collection_keys.create_collection_key(
            conn, organisation_id=org.id, passphrase=passphrase, retire_current=True, cost=cost
        )
    click.echo(f"new collection key {key_id} for {org.slug}; new submissions are sealed to it")


@keys.command("list")
@organisation_option
@run
async def list_keys(settings: Settings, organisation: str | None) -> None:
    """List the organisation's keys, current and retired."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        tables: tuple[keyrows.KeyTable, ...] = ("collection_keys", "signing_keys")
        rows = [
            (table, row)
            for table in tables
            for row in await keyrows.select_keys(conn, table, organisation_id=org.id)
        ]
    if not rows:
        click.echo(f"{org.slug} has no keys yet: run `feedback keys create`")
    for table, row in rows:
        kind = "collection" if table == "collection_keys" else "signing"
        state = "current" if row.retired_week is None else f"retired week of {row.retired_week}"
        where = "wrapped" if row.wrapped else "off-server"
        click.echo(
            f"{kind:<10} {row.id}  {fingerprint(row.public_key)}  "
            f"created week of {row.created_week}  {state}  {where}"
        )


@keys.command()
@organisation_option
@click.option("--key-id", type=click.UUID, help="Export this key rather than the current one.")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="New file to write (mode 0600)."
)
@passphrase_file_option
@run
async def export(
    settings: Settings,
    organisation: str | None,
    key_id: uuid.UUID | None,
    out: Path,
    passphrase_file: Path | None,
) -> None:
    """Write the unwrapped collection private key to a 0600 file, for offline aggregation."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        passphrase = read_passphrase(passphrase_file, confirm=False)
        key = await collection_keys.unlock(
            conn, organisation_id=org.id, passphrase=passphrase, key_id=key_id
        )
        collection_keys.write_key_file(key, out)
        await conn.execute(
            "INSERT INTO audit_log (organisation_id, action, subject, details) "
            "VALUES ($1, 'key.export', 'collection_keys', $2)",
            org.id,
            {"key_id": str(key.id)},
        )
    click.echo(f"wrote key {key.id} to {out} (mode 0600); store it offline and delete copies")
