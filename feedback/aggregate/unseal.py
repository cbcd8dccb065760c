"""Opening a period's submissions and counting them: sealed boxes are streamed from
PostgreSQL with a server-side cursor (memory stays flat however many there are), opened with
the organisation's unlocked keys, checked against their survey version and tallied. Whatever
does not open or is not a valid envelope is quarantined: counted, never an answer, never a
crash. Comments are dropped here: free text is never released.

Opening runs in worker processes, one per core: libsodium releases the GIL, but reading and
checking each envelope is Python, so threads would serialise on it. Each worker reads its own
slices of the period (ranges of the random submission id) on its own connection, so that the
ciphertexts never pass through the parent; only partial counts come back. The workers are
given the unlocked keys once, when they start, and keep them in memory only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from feedback.aggregate.keys import CannotOpen, UnlockedKey
from feedback.aggregate.privacy import Layout, Tally
from feedback.aggregate.releases import Scope
from feedback.db import Connection, connect
from feedback.envelope import InvalidEnvelope, from_plaintext
from feedback.surveys import InvalidAnswers, Survey, from_json

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Counted:
    tally: Tally
    counted: int
    quarantined: int


QUERY = """
    SELECT key_id, ciphertext FROM submissions
     WHERE organisation_id = $1 AND survey_id = $2
       AND ($3::uuid IS NULL OR program_id = $3)
       AND received_week >= $4 AND received_week < $5
       AND id >= $6 AND id <= $7
"""
FIRST, LAST = uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)


async def count_period(
    conn: Connection,
    scope: Scope,
    *,
    survey: Survey,
    layout: Layout,
    keys: Mapping[uuid.UUID, UnlockedKey],
    database_url: str | None = None,
    workers: int | None = None,
) -> Counted:
    """Tally the scope's submissions. With a ``database_url`` and more than one worker
    (default: one per core), worker processes each read and open a slice of the submissions
    (by id, which is random) on connections of their own; only counts come back."""
    workers = workers or os.cpu_count() or 1
    secrets = {key_id: key.to_bytes() for key_id, key in keys.items()}
    setup = (secrets, survey.to_json(), layout.question_ids(), layout.breakdown)
    where = (scope.organisation_id, scope.survey_id, scope.program_id, *scope.period.weeks())
    if database_url is None or workers == 1:
        _start_worker(*setup)
        try:
            async with conn.transaction():  # a server-side cursor lives in a transaction
                return _merge(layout, [await _count_slice(conn, where, FIRST, LAST)])
        finally:
            _worker.clear()
    slices = _slices(workers * 4)  # more slices than workers: an uneven slice waits less
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        max_workers=workers,
        # spawn, not fork: this process has threads (the log flusher) and open sockets.
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=setup,
    ) as pool:
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(pool, _count_slice_in_worker, database_url, where, lo, hi)
                for lo, hi in slices
            )
        )
    return _merge(layout, list(parts))


def _slices(count: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """``count`` contiguous, inclusive ranges that cover every UUID."""
    step = 2**128 // count
    bounds = [i * step for i in range(count)] + [2**128]
    return [(uuid.UUID(int=bounds[i]), uuid.UUID(int=bounds[i + 1] - 1)) for i in range(count)]


def _merge(layout: Layout, parts: list[tuple[list[int], int, int]]) -> Counted:
    tally = Tally(layout)
    counted = quarantined = 0
    for counts, ok, bad in parts:
        tally.counts = [a + b for a, b in zip(tally.counts, counts, strict=True)]
        counted += ok
        quarantined += bad
    return Counted(tally, counted, quarantined)


async def _count_slice(
    conn: Connection, where: tuple[Any, ...], lo: uuid.UUID, hi: uuid.UUID
) -> tuple[list[int], int, int]:
    """Read and count one slice; the caller holds a transaction open for the cursor."""
    counts: list[int] | None = None
    counted = quarantined = 0
    cursor = await conn.cursor(QUERY, *where, lo, hi)
    while rows := await cursor.fetch(CHUNK):
        part, ok, bad = _count_chunk([(row["key_id"], row["ciphertext"]) for row in rows])
        counts = part if counts is None else [a + b for a, b in zip(counts, part, strict=True)]
        counted += ok
        quarantined += bad
    return counts or Tally(_worker["layout"]).counts, counted, quarantined


def _count_slice_in_worker(
    database_url: str, where: tuple[Any, ...], lo: uuid.UUID, hi: uuid.UUID
) -> tuple[list[int], int, int]:
    async def run() -> tuple[list[int], int, int]:
        conn = await connect(database_url, statement_timeout_ms=0)
        try:
            async with conn.transaction():
                return await _count_slice(conn, where, lo, hi)
        finally:
            await conn.close()

    return asyncio.run(run())


# In each worker process: the unlocked keys, the survey and the layout, set once at start.
_worker: dict[str, Any] = {}


def _start_worker(
    secrets: Mapping[uuid.UUID, bytes],
    definition: Mapping[str, Any],
    question_ids: Sequence[str],
    breakdown: str | None,
) -> None:
    survey = from_json(definition)
    _worker["keys"] = {k: UnlockedKey.from_bytes(k, v) for k, v in secrets.items()}
    _worker["survey"] = survey
    _worker["layout"] = Layout.plan(survey, question_ids, breakdown)


def _count_chunk(chunk: Sequence[tuple[uuid.UUID, bytes]]) -> tuple[list[int], int, int]:
    """(partial counts, counted, quarantined) for one chunk of rows."""
    keys, survey = _worker["keys"], _worker["survey"]
    tally = Tally(_worker["layout"])
    counted = quarantined = 0
    for key_id, ciphertext in chunk:
        answers = _open(key_id, ciphertext, keys, survey)
        if answers is None:
            quarantined += 1
        else:
            tally.add(answers)
            counted += 1
    return tally.counts, counted, quarantined


def _open(
    key_id: uuid.UUID, ciphertext: bytes, keys: Mapping[uuid.UUID, UnlockedKey], survey: Survey
) -> dict[str, int | str] | None:
    key = keys.get(key_id)
    if key is None:
        return None
    try:
        envelope = from_plaintext(key.open(ciphertext))
        if (envelope.survey, envelope.survey_version) != (survey.slug, survey.version):
            return None
        return survey.check_answers(envelope.answers, None, comments=False)
    except (CannotOpen, InvalidEnvelope, InvalidAnswers):
        return None


def counter(
    conn: Connection,
    scope: Scope,
    *,
    survey: Survey,
    layout: Layout,
    keys: Mapping[uuid.UUID, UnlockedKey],
    database_url: str | None = None,
) -> Callable[[], Awaitable[tuple[Tally, dict[str, Any]]]]:
    """What ``make_release`` calls to count: the tally, and the metadata published beside
    the release (submissions quarantined, the privacy unit)."""

    async def count() -> tuple[Tally, dict[str, Any]]:
        counted = await count_period(
            conn, scope, survey=survey, layout=layout, keys=keys, database_url=database_url
        )
        return counted.tally, {
            "quarantined": counted.quarantined,
            **await privacy_unit(conn, scope),
        }

    return count


async def privacy_unit(conn: Connection, scope: Scope) -> dict[str, Any]:
    """What one unit of the guarantee is, from how invitations were issued (staff's data),
    never from which submissions arrived."""
    has_open_link = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM invitations
                        WHERE organisation_id = $1 AND kind = 'open'
                          AND ($2::uuid IS NULL OR program_id = $2))
        """,
        scope.organisation_id,
        scope.program_id,
    )
    if has_open_link:
        return {
            "privacy_unit": "submission",
            "note": "Open (poster) links were offered: the guarantee is per submission, "
            "not per person.",
        }
    return {"privacy_unit": "invitation", "note": "One single-use invitation per survivor."}
