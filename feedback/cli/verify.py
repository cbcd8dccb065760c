"""`feedback verify`: a funder's check of a publication bundle."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from feedback.bundles import BundleError, check, remember
from feedback.minisign import BadSignature, PublicKey
from feedback.networks import check_network


@click.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The organisation's public key file (minisign format), as it gave it to you (the "
    "signing-key.pub a bundle carries came with it: it proves nothing about who made it).",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder where the last publication of each series is remembered, to report "
    "rollbacks, forks, gaps and overdue publications.",
)
def verify_command(bundle: Path, key_file: Path, state: Path | None) -> None:
    """Check a publication BUNDLE (a folder or .tar.gz): its signature and every file. Needs
    no database and no settings."""
    try:
        key = _key(key_file)
        report = check(bundle, key, then=check_network)
        if state is not None:
            remember(state, report, dt.datetime.now(dt.UTC).date())
    except (BundleError, BadSignature) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    manifest = report.manifest
    if manifest is not None:
        click.echo(
            f"{manifest.organisation}, series {manifest.series}, publication "
            f"{manifest.sequence}, issued {manifest.issued}"
            + (
                f", correcting publication {manifest.corrects}: {manifest.why}"
                if manifest.corrects is not None
                else ""
            )
        )
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(f"FAILED {problem}")
    if manifest is None or not report.ok:
        sys.exit(1)
    click.echo(f"verified: the signature and all {len(manifest.files)} files")


def _key(key_file: Path) -> PublicKey:
    try:
        return PublicKey.parse(key_file.read_text())
    except OSError as exc:
        raise BundleError(f"cannot read {key_file}: {exc}") from None
