"""publication_build_s and verify_s (issue 14): a yearly publication of an organisation with 10
programs and 4 quarterly releases each (the indices), built, signed and stored as the worker
does, beside the time to draw the same charts alone (its baseline); and `feedback verify`'s
check of that bundle, beside reading and hashing its files alone.

The signing key is wrapped at libsodium's interactive cost here: with the sensitive cost of a
real key, unwrapping it adds about 3 s to each publication (once per publication)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.database import bench_database
from feedback.aggregate.signing import create_signing_key
from feedback.bundles import check
from feedback.cli.publications import export
from feedback.cli.publishing import publish
from feedback.db import connect
from feedback.minisign import PublicKey
from feedback.publish import publications
from feedback.schedules import add_schedule
from feedback.stats.periods import Period
from feedback.wrapping import INSECURE_TEST
from tests import factories
from tests.publish.conftest import add_release

PROGRAMS = 10
QUARTERS = ("2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4")
PASSPHRASE = "benchmark lantern quietly orbit teapot"  # noqa: S105 - a benchmark key
BUILD_TARGET_S = 10.0
VERIFY_TARGET_S = 1.0


async def _build(url: str, folder: Path) -> tuple[float, float, Path, PublicKey]:
    conn = await connect(url, statement_timeout_ms=600_000)
    try:
        t = await factories.tenant(conn, "bench")
        await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
        for number in range(PROGRAMS - 1):
            await conn.execute(
                "INSERT INTO programs (organisation_id, slug, name) VALUES ($1, $2, $3)",
                t.organisation_id,
                f"program-{number}",
                f"Program {number}",
            )
        for program in await conn.fetch("SELECT id FROM programs"):
            for quarter in QUARTERS:
                await add_release(
                    conn, t, quarter, program_id=program["id"], kind="indices", epsilon=0.2,
                    respondents=120, draw=False,
                )  # fmt: skip
        await create_signing_key(
            conn, organisation_id=t.organisation_id, passphrase=PASSPHRASE, cost=INSECURE_TEST
        )
        schedule = await add_schedule(conn, t.organisation_id, "yearly", "year", 15, None)
        year, today = Period.parse("2025"), dt.datetime.now(dt.UTC).date()
        heading = publications.Heading("bench", "bench", "yearly", 1, year, today, None)
        gathered = await publications.gather(conn, t.organisation_id, heading, None)
        publications.sections(gathered)  # once first: vl-convert's engine and compiled charts
        started = time.perf_counter()
        publications.sections(gathered)  # the charts alone
        charts_s = time.perf_counter() - started
        started = time.perf_counter()
        made = await publish(conn, schedule, year, passphrase=PASSPHRASE, issued=today)
        build_s = time.perf_counter() - started
        packed = await conn.fetchval("SELECT archive FROM publications WHERE id = $1", made.id)
        key = await conn.fetchval("SELECT public_key FROM signing_keys")
        return build_s, charts_s, export(packed, folder / "bundle"), PublicKey.of(key)
    finally:
        await conn.close()


def _hash_alone(bundle: Path) -> float:
    started = time.perf_counter()
    for path in sorted(bundle.rglob("*")):
        if path.is_file():
            hashlib.sha256(path.read_bytes()).hexdigest()
    return time.perf_counter() - started


def publication_figures() -> dict[str, Any]:
    with bench_database() as url, tempfile.TemporaryDirectory() as scratch:
        build_s, charts_s, bundle, key = asyncio.run(_build(url, Path(scratch)))
        checks = []
        for _ in range(5):
            started = time.perf_counter()
            report = check(bundle, key)
            checks.append(time.perf_counter() - started)
            if not report.ok:
                raise SystemExit(f"the benchmark's bundle does not verify: {report.problems}")
        verify_s = min(checks)
        hashed_s = min(_hash_alone(bundle) for _ in range(5))
    return {
        "publication_build_s": {
            "value": round(build_s, 2),
            "unit": "s",
            "baseline": round(charts_s, 2),
            "ratio": round(build_s / charts_s, 2),
            "target": BUILD_TARGET_S,
        },
        "verify_s": {
            "value": round(verify_s, 3),
            "unit": "s",
            "baseline": round(hashed_s, 3),
            "ratio": round(verify_s / hashed_s, 2),
            "target": VERIFY_TARGET_S,
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(publication_figures(), indent=2))
