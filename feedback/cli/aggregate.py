"""`feedback aggregate`: the planned releases of one period, now."""

from __future__ import annotations

import contextlib
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from feedback.aggregate.keys import UnlockedKey, load_key_file, unlock_all
from feedback.aggregate.scheduled import make_planned, of_period
from feedback.aggregate.unseal import Progress, waiting_for
from feedback.cli.common import (
    key_file_option,
    organisation_option,
    passphrase_file_option,
    pick_organisation,
    read_passphrase,
    run,
)
from feedback.cli.runtime import ready_database
from feedback.config import Settings
from feedback.db import WORKER, Connection
from feedback.stats import means
from feedback.stats.periods import Period
from feedback.stats.plans import PlanLine
from feedback.surveys import INDICES


class ProgressBar:
    """A bar on the terminal for a long run (click's; it stays quiet when not on a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: Any = None
        self._stack = contextlib.ExitStack()

    def start(self, total: int) -> None:
        self._bar = self._stack.enter_context(
            click.progressbar(length=total, label=self.label, file=sys.stderr)
        )

    def advance(self, read: int) -> None:
        if self._bar is not None:
            self._bar.update(read)

    def close(self) -> None:
        self._stack.close()


async def unlocked_keys(
    conn: Connection,
    organisation_id: uuid.UUID,
    passphrase_file: Path | None,
    key_file: Path | None,
) -> dict[uuid.UUID, UnlockedKey]:
    """Every key that opens: from the key file, or each wrapped key the passphrase unwraps."""
    if key_file is not None:
        key = await load_key_file(conn, organisation_id, key_file)
        return {key.id: key}
    return await unlock_all(conn, organisation_id, read_passphrase(passphrase_file, confirm=False))


def _noise_lines(cells: dict[str, Any], threshold: int) -> list[str]:
    """What the noise allows, for the key holder: per cell, or each shown index's interval."""
    if "half_width_95" in cells:
        return [f"  95% noise half-width per cell: +/- {cells['half_width_95']:.1f}"]
    lines = []
    scales = means.stored_scales(cells)
    for group in cells["groups"]:
        shown = means.stored_group(cells, group["group"])
        if not shown:
            lines.append(f"  {group['group']}: suppressed (noisy n below the threshold)")
            continue
        for index, noisy in shown.items():
            mean = means.estimate(noisy)
            found = means.interval(noisy, scales, threshold=threshold)
            value = "can't tell" if mean is None else f"{mean:.1f}"
            lines.append(
                f"  {group['group']}: {INDICES[index]} {value} "
                f"(95%, sampling and noise: {found.low:.1f} to {found.high:.1f})"
            )
    return lines


@click.command()
@organisation_option
@click.option("--period", required=True, help="2026-07, 2026-Q3, 2026-H2 or 2026.")
@click.option("--program", "-p", metavar="SLUG", help="Only this program's planned releases.")
@key_file_option
@passphrase_file_option
@run
async def aggregate(
    settings: Settings,
    organisation: str | None,
    period: str,
    program: str | None,
    key_file: Path | None,
    passphrase_file: Path | None,
) -> None:
    """Open, count and release the planned releases of one period (or show those already
    made for it). What a year releases is declared first, with `feedback plan add`."""
    declared = Period.parse(period)
    bars: list[ProgressBar] = []

    def progress(line: PlanLine, period: Period) -> Progress:
        bars.append(ProgressBar(f"{period} {line.program or 'all programs'}"))
        return bars[-1]

    async with (
        ready_database(settings, role=WORKER) as (url, pool),
        pool.acquire() as conn,
    ):
        org = await pick_organisation(conn, organisation)
        work = await of_period(conn, org.id, declared, program)
        keys = await unlocked_keys(conn, org.id, passphrase_file, key_file)
        try:
            made = await make_planned(conn, work, keys=keys, database_url=url, progress=progress)
        finally:
            for bar in bars:
                bar.close()
        # Exact, and shown here only (the key holder's terminal): never stored or logged.
        waiting = {
            id(item): await waiting_for(conn, item.scope, item.missing.missing)
            for item in made
            if item.missing is not None and item.scope is not None
        }
    refused = 0
    for item in made:
        click.echo(f"{item.period} - {item.line.describe()}")
        if item.release is None:
            refused += 1
            click.echo(f"  refused: {item.refused}")
            if id(item) in waiting:
                click.echo(
                    f"  {waiting[id(item)]} submissions of it arrived in weeks when those keys "
                    "took answers"
                )
            continue
        release = item.release
        state = "made" if release.created else "already made; nothing was spent"
        click.echo(f"  release {release.id} ({state})")
        click.echo(
            f"  epsilon {release.epsilon}, discrete Laplace scale {release.noise_scale}, "
            f"k {release.threshold}"
        )
        for text in _noise_lines(release.cells, release.threshold):
            click.echo(text)
        click.echo(f"  {release.metadata.get('composition', '')}")
        if release.quarantined is not None:
            # Exact, and shown here only (the key holder's terminal): never stored or logged.
            click.echo(
                f"  submissions set aside (did not open, or not a valid envelope): "
                f"{release.quarantined}"
            )
    if refused:
        raise click.exceptions.Exit(1)
