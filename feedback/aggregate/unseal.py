"""Opening a period's submissions and counting them: sealed boxes are streamed from
PostgreSQL with a server-side cursor (memory stays flat however many there are), opened with
the organisation's unlocked keys, checked against their survey version and tallied. Whatever
does not open or is not a valid envelope is quarantined: counted, never an answer, never a
crash. Comments are dropped here: free text is never released.

Opening runs in worker processes, one per core: libsodium releases the GIL, but reading and
checking each envelope is Python, so threads would serialise on it. The parent hands out
chunks of rows, a bounded number at a time, and sums the partial tallies the workers return;
the workers are given the unlocked keys once, when they start, and keep them in memory only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from feedback.aggregate.keys import CannotOpen, UnlockedKey
from feedback.aggregate.privacy import Layout, Tally
from feedback.aggregate.releases import Scope
from feedback.db import Connection
from feedback.envelope import InvalidEnvelope, from_plaintext
from feedback.surveys import InvalidAnswers, Survey, from_json

PREFETCH = 2000
CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Counted:
    tally: Tally
    counted: int
    quarantined: int


async def count_period(
    conn: Connection,
    scope: Scope,
    *,
    survey: Survey,
    layout: Layout,
    keys: Mapping[uuid.UUID, UnlockedKey],
    workers: int | None = None,
) -> Counted:
    """Tally the scope's submissions; ``workers`` processes (default: one per core, none
    when 1) open them."""
    workers = workers or os.cpu_count() or 1
    tally = Tally(layout)
    counted = quarantined = 0
    pool = None
    if workers > 1:
        secrets = {key_id: key.to_bytes() for key_id, key in keys.items()}
        pool = ProcessPoolExecutor(
            max_workers=workers,
            # spawn, not fork: this process has threads (the log flusher) and open sockets.
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(secrets, survey.to_json(), layout.question_ids(), layout.breakdown),
        )
    else:
        _start_worker(
            {k: bytes(v.private_key) for k, v in keys.items()},
            survey.to_json(),
            layout.question_ids(),
            layout.breakdown,
        )
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Future[tuple[list[int], int, int]]] = set()

    def merge(done: tuple[list[int], int, int]) -> None:
        nonlocal counted, quarantined
        counts, ok, bad = done
        tally.counts = [a + b for a, b in zip(tally.counts, counts, strict=True)]
        counted += ok
        quarantined += bad

    try:
        async with conn.transaction():  # a server-side cursor lives in a transaction
            cursor = await conn.cursor(
                """
                SELECT key_id, ciphertext FROM submissions
                 WHERE organisation_id = $1 AND survey_id = $2
                   AND ($3::uuid IS NULL OR program_id = $3)
                   AND received_week >= $4 AND received_week < $5
                """,
                scope.organisation_id,
                scope.survey_id,
                scope.program_id,
                *scope.period.weeks(),
            )
            while rows := await cursor.fetch(CHUNK):
                chunk = [(row["key_id"], row["ciphertext"]) for row in rows]
                if pool is None:
                    merge(_count_chunk(chunk))
                    continue
                pending.add(loop.run_in_executor(pool, _count_chunk, chunk))
                if len(pending) >= 2 * workers:  # bounded: memory stays flat
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for future in done:
                        merge(future.result())
            for future in asyncio.as_completed(pending):
                merge(await future)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        _worker.clear()  # the in-process path used this process's own slot
    return Counted(tally, counted, quarantined)


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
