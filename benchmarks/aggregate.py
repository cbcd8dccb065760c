"""Aggregation figures (issue 4):

- aggregate_open_count: envelopes opened, validated and counted per second over 1,000,000
  submissions, beside the raw PyNaCl SealedBox decrypt rate on all cores (same run).
- aggregate_peak_rss_mb: peak memory (worker and its processes) over those 1,000,000, beside
  the same over 100,000: flat means the ratio stays near 1.
- release_10k_cells_s: seconds to noise and store a release of 10,000 cells, beside OpenDP's
  bare noise call on the same vector.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from typing import Any

import psutil
from nacl.public import PrivateKey, SealedBox

from benchmarks.database import bench_database
from feedback.aggregate.keys import UnlockedKey
from feedback.aggregate.privacy import Counted, Noise, Tally
from feedback.aggregate.releases import Scope, make_release
from feedback.aggregate.unseal import count_period
from feedback.db import WORKER, connect
from feedback.envelope import Envelope
from feedback.sealing import seal
from feedback.stats.cells import Layout
from feedback.stats.periods import Period
from feedback.surveys import FIRST_VERSION, load_survey, parse_definition
from tests import factories

SUBMISSIONS = int(os.environ.get("BENCH_SUBMISSIONS", "1000000"))
SMALL = SUBMISSIONS // 10
DISTINCT = 2000  # distinct sealed envelopes, repeated; each row is still opened on its own
WEEK = dt.date(2026, 8, 3)
SURVEY = load_survey(FIRST_VERSION)
QUESTIONS = [q.id for q in SURVEY.questions if q.type != "comment" and not q.demographic]


class PeakRss:
    """Samples this process and its children every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += child.memory_info().rss
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _decrypt(args: tuple[bytes, list[bytes], int]) -> int:
    secret, boxes, rounds = args
    box = SealedBox(PrivateKey(secret))
    for i in range(rounds):
        box.decrypt(boxes[i % len(boxes)])
    return rounds


def _raw_decrypt_rate(key: PrivateKey, boxes: list[bytes]) -> float:
    cores = os.cpu_count() or 1
    per_core = 60_000
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_decrypt, [(bytes(key), boxes[:100], 100)] * cores))  # warm up
        started = time.perf_counter()
        done = sum(pool.map(_decrypt, [(bytes(key), boxes, per_core)] * cores))
    return done / (time.perf_counter() - started)


async def _fill(url: str, count: int, boxes: list[bytes], tenant: factories.Tenant) -> None:
    conn = await connect(url)
    try:
        for start in range(0, count, 100_000):
            records = [
                (
                    tenant.organisation_id,
                    tenant.program_id,
                    tenant.survey_id,
                    "web",
                    WEEK,
                    boxes[i % len(boxes)],
                )
                for i in range(start, min(count, start + 100_000))
            ]
            await conn.copy_records_to_table(
                "submissions",
                records=records,
                columns=[
                    "organisation_id",
                    "program_id",
                    "survey_id",
                    "channel",
                    "received_week",
                    "ciphertext",
                ],
            )
        # The steady state: autovacuum would have run by the time of a release (and must
        # not run during the measurement, on the same two cores).
        await conn.execute("VACUUM (ANALYZE) submissions")
    finally:
        await conn.close()


async def _count(
    url: str, tenant: factories.Tenant, key: PrivateKey, program: Any
) -> tuple[int, float]:
    conn = await connect(url, role=WORKER, statement_timeout_ms=3_600_000)
    try:
        scope = Scope(tenant.organisation_id, program, tenant.survey_id, Period.parse("2026-Q3"))
        started = time.perf_counter()
        counted = await count_period(
            conn,
            scope,
            layout=Layout.plan(SURVEY, QUESTIONS),
            keys={tenant.key_id: UnlockedKey(tenant.key_id, key)},
            database_url=url,
        )
        return counted.counted, time.perf_counter() - started
    finally:
        await conn.close()


async def _setup(url: str) -> factories.KeyedTenant:
    conn = await connect(url)
    try:
        return await factories.keyed_tenant(conn, "bench")
    finally:
        await conn.close()


def aggregation_figures() -> dict[str, Any]:
    rng = random.Random(1)  # noqa: S311 - synthetic data
    with bench_database() as url:
        keyed = asyncio.run(_setup(url))
        key, tenant = keyed.private_key, keyed.tenant
        boxes = []
        for _ in range(DISTINCT):
            answers = {
                q: rng.randint(1, 5) for q in QUESTIONS if SURVEY.question(q).type == "likert5"
            }
            boxes.append(
                seal(key.public_key, Envelope(SURVEY.slug, 1, "en", answers).to_plaintext())
            )
        raw = _raw_decrypt_rate(key, boxes)
        asyncio.run(_fill(url, SMALL, boxes, tenant))
        with PeakRss() as small_rss:
            counted_small, _ = asyncio.run(_count(url, tenant, key, None))
        asyncio.run(_fill(url, SUBMISSIONS - SMALL, boxes, tenant))
        with PeakRss() as big_rss:
            counted, seconds = asyncio.run(_count(url, tenant, key, None))
        if (counted_small, counted) != (SMALL, SUBMISSIONS):
            raise RuntimeError(
                f"counted {counted_small} and {counted}, not {SMALL} and {SUBMISSIONS}"
            )
        release_s, noise_s = asyncio.run(_release_10k(url, tenant))
    rate = counted / seconds
    mb = 1024 * 1024
    return {
        "aggregate_open_count": {
            "value": round(rate),
            "unit": "envelopes/s",
            "baseline": round(raw),
            "ratio": round(rate / raw, 3),
            "target": 0.8,
        },
        "aggregate_peak_rss_mb": {
            "value": round(big_rss.peak / mb, 1),
            "unit": "MB",
            "baseline": round(small_rss.peak / mb, 1),
            "ratio": round(big_rss.peak / small_rss.peak, 3),
            "target": 300,
        },
        "release_10k_cells_s": {
            "value": round(release_s, 3),
            "unit": "s",
            "baseline": round(noise_s, 3),
            "ratio": round(release_s / noise_s, 1),
            "target": 1.0,
        },
    }


async def _release_10k(url: str, tenant: factories.Tenant) -> tuple[float, float]:
    """A survey of 1,997 five-point questions and one of 13 choices: n, then 1,997 x 5
    (three categories, prefer not to say, skipped) and 13 + 1 cells, 10,000 in all."""
    lines = ['slug = "wide"', "version = 1", 'title = "Wide"']
    for i in range(1997):
        lines += ["[[questions]]", f'id = "q{i}"', 'type = "likert5"', f'text = "Q{i}"']
    options = ", ".join(f'{{ id = "o{i}", text = "O{i}" }}' for i in range(13))
    lines += [
        "[[questions]]",
        'id = "choice"',
        'type = "single_choice"',
        'text = "C"',
        f"options = [{options}]",
    ]
    survey = parse_definition("\n".join(lines), "wide.toml")
    conn = await connect(url)
    try:
        await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
        survey_id = await conn.fetchval(
            "INSERT INTO surveys (organisation_id, slug, version, definition) "
            "VALUES ($1, 'wide', 1, $2) RETURNING id",
            tenant.organisation_id,
            survey.to_json(),
        )
        layout = Layout.plan(survey, [q.id for q in survey.questions])
        assert len(layout) == 10_000  # noqa: S101 - the figure's definition
        tally = Tally(layout)

        async def count() -> tuple[Counted, dict[str, Any]]:
            return Counted(tally, 0, 0), {}

        noise = Noise(1.0, layout.sensitivity)
        started = time.perf_counter()
        noise.add(tally.counts)
        noise_s = time.perf_counter() - started
        scope = Scope(tenant.organisation_id, None, survey_id, Period.parse("2026-Q1"))
        started = time.perf_counter()
        await make_release(
            conn, scope, layout=layout, epsilon=Decimal(1), threshold=11, count=count
        )
        return time.perf_counter() - started, noise_s
    finally:
        await conn.close()
