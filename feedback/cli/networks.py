"""`feedback network`: a coalition's summary across its members, from their signed
publications alone. The key holder of the network runs it: members are registered by their
public signing keys, each member publication is checked before it is imported, and the summary
is signed with the network's own key and stored as a publication of the network."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import click

from feedback.aggregate.signing import create_signing_key
from feedback.bundles import BundleError, Manifest, archive, check, opened, sha256
from feedback.cli.common import (
    passphrase_file_option,
    read_passphrase,
    run,
)
from feedback.cli.publications import export
from feedback.cli.publishing import Bundle, lock_series, next_in_series, sign_and_store
from feedback.cli.runtime import ready_pool
from feedback.cli.setup import OWNER
from feedback.config import Settings
from feedback.db import WORKER, Connection
from feedback.minisign import BadSignature, PublicKey
from feedback.networks import (
    MEMBERS,
    NETWORK,
    NETWORK_FORMAT,
    NetworkError,
    Requirements,
    member_entry,
    method,
    read_figures,
    refusals,
    summarise,
)
from feedback.organisations import check_name, check_slug, create_organisation
from feedback.publish.render import standalone
from feedback.stats.periods import Period
from feedback.wrapping import SENSITIVE, KdfCost, kdf_cost

SERIES = "network"


async def network_of(conn: Connection, slug: str) -> uuid.UUID:
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT n.organisation_id FROM networks n JOIN organisations o "
        "ON o.id = n.organisation_id WHERE o.slug = $1",
        slug,
    )
    if found is None:
        raise NetworkError(f"no network {slug!r}: make it with `feedback network create`")
    return found


async def create_network(
    conn: Connection,
    slug: str,
    name: str,
    required: Requirements,
    passphrase: str,
    *,
    cost: KdfCost = SENSITIVE,
) -> uuid.UUID:
    async with conn.transaction():
        network_id = await create_organisation(conn, slug, name)
        await conn.execute(
            "INSERT INTO networks (organisation_id, privacy_unit, threshold) VALUES ($1, $2, $3)",
            network_id,
            required.privacy_unit,
            required.threshold,
        )
        await create_signing_key(
            conn,
            organisation_id=network_id,
            passphrase=passphrase,
            cost=cost,
        )
    return network_id


async def add_member(
    conn: Connection, network_id: uuid.UUID, member: str, name: str, key: PublicKey, consents: bool
) -> None:
    """Register a member (again: it rejoins, its consent as given), by the short name its
    publications carry. A member's key is the one it was registered with."""
    check_slug(member, "a member")
    registered = await conn.fetchval(
        "SELECT public_key FROM network_members WHERE network_id = $1 AND member = $2",
        network_id,
        member,
    )
    if registered is not None and registered != key.line():
        raise NetworkError(
            f"{member} is registered with another key ({PublicKey.parse(registered).hex_id}); "
            "a member's key does not change here: ask the member how its key changed, and "
            "register the new one under a new name"
        )
    await conn.execute(
        """
        INSERT INTO network_members (network_id, member, name, public_key, consents)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (network_id, member) DO UPDATE
            SET left_on = NULL, consents = EXCLUDED.consents
        """,
        network_id,
        member,
        check_name(name, "the member's name"),
        key.line(),
        consents,
    )


async def import_bundle(conn: Connection, network_id: uuid.UUID, bundle: Path) -> Manifest:
    """Check a member's publication with the key registered for it and against the network's
    requirements, and keep it. Refused, saying why, when any check fails."""
    _, _, required = await _network_by_id(conn, network_id)
    with opened(bundle) as folder:
        try:
            claimed = Manifest.parse((folder / "manifest.json").read_bytes())
        except (OSError, BundleError) as exc:
            raise NetworkError(f"refused: {bundle} has no readable manifest ({exc})") from None
        row = await conn.fetchrow(
            "SELECT public_key FROM network_members "
            "WHERE network_id = $1 AND member = $2 AND left_on IS NULL",
            network_id,
            claimed.organisation,
        )
        if row is None:
            raise NetworkError(
                f"refused: {claimed.organisation} is not a current member of this network "
                "(register it with `feedback network member`)"
            )
        report = check(folder, PublicKey.parse(row["public_key"]))
        if not report.ok or report.manifest is None or report.manifest_sha256 is None:
            raise NetworkError(
                f"refused: {bundle} does not verify with the key registered for "
                f"{claimed.organisation}: " + "; ".join(report.problems)
            )
        figures = read_figures(folder)
        refused = refusals(figures, required)
        if refused:
            raise NetworkError("refused: " + "; ".join(refused))
        manifest = report.manifest
        await conn.execute(
            """
            INSERT INTO network_imports (network_id, member, series, sequence, period,
                                         manifest_sha256, archive)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT DO NOTHING
            """,
            network_id,
            manifest.organisation,
            manifest.series,
            manifest.sequence,
            figures["period"],
            report.manifest_sha256,
            archive(folder),
        )
    return manifest


async def _network_by_id(conn: Connection, network_id: uuid.UUID) -> tuple[str, str, Requirements]:
    row = await conn.fetchrow(
        """
        SELECT o.slug, o.name, n.privacy_unit, n.threshold
          FROM networks n JOIN organisations o ON o.id = n.organisation_id WHERE o.id = $1
        """,
        network_id,
    )
    if row is None:
        raise NetworkError(f"no network {network_id}")
    return row["slug"], row["name"], Requirements(row["privacy_unit"], row["threshold"])


async def summarise_network(
    conn: Connection,
    network_id: uuid.UUID,
    period: Period,
    passphrase: str,
    issued: dt.date,
    *,
    corrects: int | None = None,
    why: str | None = None,
) -> tuple[uuid.UUID, int]:
    """The network's summary of ``period`` from the latest imported publication of that period
    of each current member, signed and stored (or the one made already); its id and number.
    With ``corrects``, a new summary of that one's period, from what is imported now."""
    slug, name, required = await _network_by_id(conn, network_id)
    async with conn.transaction():
        await lock_series(conn, network_id, SERIES)
        made = await conn.fetchrow(
            "SELECT id, sequence FROM publications WHERE organisation_id = $1 AND series = $2 "
            "AND period = $3 AND (sequence = $4 OR $4 IS NULL AND corrects IS NULL)",
            network_id,
            SERIES,
            str(period),
            corrects,
        )
        if corrects is None and made is not None:
            return made["id"], made["sequence"]
        if corrects is not None and (made is None or not (why or "").strip()):
            raise NetworkError(
                f"a correction names a summary of {period} (summary {corrects} is not one) "
                "and says why (--why)"
            )
        rows = await conn.fetch(
            """
            SELECT DISTINCT ON (m.member) m.member, m.name, m.public_key, m.consents,
                   i.series, i.sequence, i.archive
              FROM network_members m
              JOIN network_imports i USING (network_id, member)
             WHERE m.network_id = $1 AND m.left_on IS NULL AND i.period = $2
             ORDER BY m.member, i.seq DESC
            """,
            network_id,
            str(period),
        )
        if len(rows) < 2:
            raise NetworkError(
                f"{len(rows)} member publication(s) of {period} imported: a summary needs two "
                "or more (`feedback network import`)"
            )
        files = _files(slug, name, required, period, rows)
        sequence, previous = await next_in_series(conn, network_id, SERIES)
        publication_id = await sign_and_store(
            conn,
            Bundle(
                network_id,
                slug,
                SERIES,
                sequence,
                period,
                (),
                issued,
                None,
                previous,
                corrects,
                why,
            ),
            files,
            passphrase,
        )
    return publication_id, sequence


def _files(
    slug: str, name: str, required: Requirements, period: Period, rows: list[Any]
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    entries, members = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for row in rows:
            where = f"{MEMBERS}/{row['member']}-{row['series']}-{row['sequence']}"
            folder = export(row["archive"], Path(scratch) / where)
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                files[f"{where}/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
            manifest = Manifest.parse((folder / "manifest.json").read_bytes())
            entries.append(
                member_entry(
                    row["member"],
                    row["name"],
                    row["public_key"],
                    row["consents"],
                    where,
                    manifest,
                    sha256((folder / "manifest.json").read_bytes()),
                )
            )
            members.append((row["member"], row["consents"], read_figures(folder)))
    stated = {
        "format": NETWORK_FORMAT,
        "network": slug,
        "name": name,
        "period": str(period),
        "requirements": {"privacy_unit": required.privacy_unit, "threshold": required.threshold},
        "members": entries,
        "figures": summarise(members, period),
        "method": method(period),
    }
    files[NETWORK] = json.dumps(stated, indent=1, sort_keys=True).encode() + b"\n"
    files["summary.html"] = standalone(
        "network.html", stated=stated, names={e["member"]: e["name"] for e in entries}
    ).encode()
    return files


# Commands -----------------------------------------------------------------------------------


@click.group("network")
def network_group() -> None:
    """A coalition's summary across member organisations, from their signed publications."""


@network_group.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The network's name, as its summaries show it.")
@click.option(
    "--privacy-unit",
    type=click.Choice(["invitation", "submission"]),
    default="invitation",
    show_default=True,
    help="What every member release must protect.",
)
@click.option(
    "--threshold",
    type=click.IntRange(1),
    required=True,
    help="The suppression threshold every member release must use.",
)
@passphrase_file_option
@run
async def create_command(
    settings: Settings,
    slug: str,
    name: str,
    privacy_unit: str,
    threshold: int,
    passphrase_file: Path | None,
) -> None:
    """Make the network SLUG and its signing key (kept under the passphrase)."""
    passphrase = read_passphrase(passphrase_file, confirm=True)
    async with ready_pool(settings, role=OWNER) as pool, pool.acquire() as conn:
        await create_network(
            conn,
            slug,
            name,
            Requirements(privacy_unit, threshold),
            passphrase,
            cost=kdf_cost(insecure_test=settings.insecure_test_kdf),
        )
    click.echo(f"network {slug} made; give members its key: feedback publications key -o {slug}")


def member_key(path: Path) -> PublicKey:
    try:
        return PublicKey.parse(path.read_text())
    except BadSignature as exc:
        raise NetworkError(f"{path}: {exc}") from None


@network_group.command("member")
@click.argument("network")
@click.argument("member")
@click.option("--name", help="The member's name (when adding it).")
@click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The member's public signing key file (minisign format), as it gave it to you.",
)
@click.option("--consents/--no-consents", default=False, help="Show it by name beside the network.")
@click.option("--leaves", is_flag=True, help="The member leaves: absent from later summaries.")
@run
async def member_command(
    settings: Settings,
    network: str,
    member: str,
    name: str | None,
    key_file: Path | None,
    consents: bool,
    leaves: bool,
) -> None:
    """Register MEMBER of NETWORK by its public key (--name, --key), or record that it leaves."""
    key = None if key_file is None else member_key(key_file)
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        network_id = await network_of(conn, network)
        if leaves:
            left = await conn.fetchval(
                "UPDATE network_members SET left_on = utc_today() "
                "WHERE network_id = $1 AND member = $2 AND left_on IS NULL RETURNING member",
                network_id,
                member,
            )
            if left is None:
                raise NetworkError(f"{member} is not a current member of {network}")
            click.echo(f"{member} left {network}: later summaries leave it out")
            return
        if not name or key is None:
            raise NetworkError("a new member needs --name and --key")
        await add_member(conn, network_id, member, name, key, consents)
    click.echo(f"{member} is a member of {network} (key {key.hex_id})")


@network_group.command("import")
@click.argument("network")
@click.argument("bundle", type=click.Path(path_type=Path))
@run
async def import_command(settings: Settings, network: str, bundle: Path) -> None:
    """Check a member's publication BUNDLE with its registered key and keep it."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        network_id = await network_of(conn, network)
        manifest = await import_bundle(conn, network_id, bundle)
    click.echo(
        f"imported {manifest.organisation}'s {manifest.series} publication {manifest.sequence}"
    )


@network_group.command("summarise")
@click.argument("network")
@click.option("--period", required=True, help="The period (for example 2025 or 2026-Q1).")
@click.option("--corrects", type=int, metavar="N", help="The summary of the period this corrects.")
@click.option("--why", help="Why it is corrected (shown with the correction).")
@passphrase_file_option
@run
async def summarise_command(
    settings: Settings,
    network: str,
    period: str,
    corrects: int | None,
    why: str | None,
    passphrase_file: Path | None,
) -> None:
    """Publish NETWORK's signed summary of a period from its members' imported publications
    (export it with `feedback publications export -o NETWORK network N --to DIR`). A period
    is summarised once: import every member's publication first, or correct it later with
    --corrects N --why TEXT (a new summary that names N)."""
    passphrase = read_passphrase(passphrase_file, confirm=False)
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        network_id = await network_of(conn, network)
        _, sequence = await summarise_network(
            conn,
            network_id,
            Period.parse(period),
            passphrase,
            dt.datetime.now(dt.UTC).date(),
            corrects=corrects,
            why=why,
        )
    click.echo(f"network summary {sequence} of {period}")
