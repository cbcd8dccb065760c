"""Opening a period's submissions and counting them: sealed boxes are streamed from
PostgreSQL with server-side cursors (memory stays flat however many there are), opened with
the organisation's unlocked keys, checked against their survey version and tallied. Whatever
does not open or is not a valid envelope is quarantined: counted, never an answer, never a
crash. Comments are dropped here: free text is never released, only (where a plan line names
the comment question) a count of those written; the key holder reads them with
`feedback comments` (see ``comments``).

A large period is opened by worker processes, one per core: libsodium releases the GIL, but
reading and checking each envelope is Python, so threads would serialise on it. The workers
read the table in slices of its physical blocks (TID ranges), each block once, on their own
connections, all in one snapshot that the parent exports (as ``pg_dump -j`` does), so that
together they see exactly the rows the parent sees, and the ciphertexts never pass through the
parent: only partial counts come back. The workers are given the unlocked keys once, when they
start, and keep them in memory only. A small period is counted in the calling process, through
the period's index: starting processes would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

from feedback.aggregate.keys import Active, CannotOpen, KeyRing, UnlockedKey, key_weeks
from feedback.aggregate.privacy import Counted, Tally
from feedback.aggregate.releases import Count, Scope
from feedback.db import WORKER, Connection, connect
from feedback.envelope import InvalidEnvelope, answers_of
from feedback.errors import FeedbackError
from feedback.stats.cells import Layout

CHUNK = 2000
PARALLEL_FROM = 20_000  # submissions; below this one process is faster than starting others
SLICES_PER_WORKER = 16  # uneven slices wait less, and the progress bar moves more often


IN_SCOPE = """
      FROM submissions
     WHERE organisation_id = $1 AND survey_id = $2
       AND ($3::uuid IS NULL OR program_id = $3)
       AND received_week >= $4 AND received_week < $5
"""
ROWS = "SELECT received_week, ciphertext" + IN_SCOPE
SLICE = ROWS + "   AND ctid >= $6::tid AND ctid < $7::tid"
END_OF_TABLE = (2**32 - 1, 0)  # past every block: the last slice is open-ended
SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")
Part = tuple[list[int], int, int]  # a raw tally (see ``Tally.raw``), counted, quarantined


class Progress(Protocol):
    """Told how many submissions a run will read, then how many more it has read."""

    def start(self, total: int) -> None: ...

    def advance(self, read: int) -> None: ...


async def count_period(
    conn: Connection,
    scope: Scope,
    *,
    layout: Layout,
    keys: Mapping[uuid.UUID, UnlockedKey],
    database_url: str | None = None,
    workers: int | None = None,
    parallel_from: int = PARALLEL_FROM,
    progress: Progress | None = None,
) -> Counted:
    """Tally the scope's submissions. With a ``database_url``, more than one worker (default:
    one per core) and at least ``parallel_from`` submissions, worker processes do the reading
    and opening."""
    workers = workers or os.cpu_count() or 1
    where: tuple[Any, ...] = (
        scope.organisation_id,
        scope.survey_id,
        scope.program_id,
        *scope.period.weeks(),
    )
    weeks = await key_weeks(conn, scope.organisation_id)
    # One snapshot for the count, the rows and every worker: they all see the same table.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total: int = await conn.fetchval("SELECT count(*)" + IN_SCOPE, *where)
        if progress is not None:
            progress.start(total)
        if database_url is None or workers == 1 or total < parallel_from:
            tally = Tally(layout)
            ring = KeyRing(list(keys.values()), weeks)
            ok, bad = await _count_rows(conn, tally, ring, ROWS, where, progress)
            return Counted(tally, ok, bad)
        snapshot: str = await conn.fetchval("SELECT pg_export_snapshot()")
        # The worker's role may not read relation sizes: its own function says this one's.
        blocks: int = await conn.fetchval("SELECT submission_blocks()")
        slices = _slices(blocks, workers * SLICES_PER_WORKER)
        secrets = {key_id: key.to_bytes() for key_id, key in keys.items()}
        setup = (secrets, weeks, layout)
        parts = await _in_workers(workers, database_url, snapshot, setup, where, slices, progress)
    tally = Tally(layout)
    counted = quarantined = 0
    for raw, ok, bad in parts:
        tally.merge(raw)
        counted += ok
        quarantined += bad
    return Counted(tally, counted, quarantined)


def _slices(blocks: int, count: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Up to ``count`` TID ranges that together cover the table, each block once."""
    step = max(1, -(-blocks // count))
    bounds = list(range(0, blocks, step)) or [0]
    ends = [(b, 0) for b in bounds[1:]] + [END_OF_TABLE]
    return [((b, 0), end) for b, end in zip(bounds, ends, strict=True)]


async def _in_workers(
    workers: int,
    database_url: str,
    snapshot: str,
    setup: tuple[Mapping[uuid.UUID, bytes], Sequence[Active], Layout],
    where: tuple[Any, ...],
    slices: Sequence[tuple[tuple[int, int], tuple[int, int]]],
    progress: Progress | None,
) -> list[Part]:
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        max_workers=workers,
        # spawn, not fork: this process has threads (the log flusher) and open sockets.
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(*setup, database_url),
    ) as pool:

        async def one(lo: tuple[int, int], hi: tuple[int, int]) -> Part:
            part = await loop.run_in_executor(pool, _count_slice, snapshot, where, lo, hi)
            if progress is not None:
                progress.advance(part[1] + part[2])
            return part

        return list(await asyncio.gather(*(one(lo, hi) for lo, hi in slices)))


async def _count_rows(
    conn: Connection,
    tally: Tally,
    ring: KeyRing,
    query: str,
    args: Sequence[Any],
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Stream the rows of ``query`` (in a transaction) into ``tally``: (counted, quarantined).
    Quarantined: opens with none of the unlocked keys, not an envelope of this survey
    version, or holding an answer the survey does not allow."""
    survey = tally.layout.survey
    slug, version, comment = survey.slug, survey.version, tally.layout.comment
    counted = read = 0
    cursor = await conn.cursor(query, *args)
    while rows := await cursor.fetch(CHUNK):
        for week, ciphertext in rows:  # the hot loop of aggregation
            try:
                answers = answers_of(ring.open(week, ciphertext), slug, version, comment)
            except (CannotOpen, InvalidEnvelope):
                continue
            counted += tally.add(answers)
        read += len(rows)
        if progress is not None:
            progress.advance(len(rows))
    return counted, read - counted


# In each worker process: the unlocked keys, the layout and a connection, set once at start.
_worker: dict[str, Any] = {}


def _start_worker(
    secrets: Mapping[uuid.UUID, bytes], weeks: Sequence[Active], layout: Layout, database_url: str
) -> None:
    loop = asyncio.new_event_loop()
    keys = [UnlockedKey.from_bytes(key_id, secret) for key_id, secret in secrets.items()]
    _worker.update(
        ring=KeyRing(keys, weeks),
        layout=layout,
        loop=loop,
        conn=loop.run_until_complete(connect(database_url, role=WORKER, statement_timeout_ms=0)),
    )


def _count_slice(
    snapshot: str, where: tuple[Any, ...], lo: tuple[int, int], hi: tuple[int, int]
) -> Part:
    if not SNAPSHOT_ID.match(snapshot):  # it is written into SQL below
        raise FeedbackError(f"not a PostgreSQL snapshot id: {snapshot!r}")
    conn: Connection = _worker["conn"]
    tally = Tally(_worker["layout"])

    async def run() -> tuple[int, int]:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            # Read the slice's blocks (a TID range scan), whatever the planner thinks of the
            # period's index: through the index, every slice would visit the whole period.
            await conn.execute(
                "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; "
                "SET LOCAL enable_seqscan = off"
            )
            return await _count_rows(conn, tally, _worker["ring"], SLICE, (*where, lo, hi))

    counted, quarantined = _worker["loop"].run_until_complete(run())
    return tally.raw, counted, quarantined


class KeysMissing(FeedbackError):
    """A period needs a key that was not unlocked. Whether that happens depends on the keys
    and the period only, never on which submissions arrived: a refusal that depended on the
    data (rows sealed to a locked key, or rows that none opened) would let a neighbouring
    dataset be told apart by whether its release exists."""

    def __init__(self, period: object, missing: Sequence[Active]) -> None:
        self.missing = tuple(missing)
        named = ", ".join(str(active.key_id) for active in self.missing)
        super().__init__(
            f"{period} needs every collection key that took answers in it, and these were "
            f"not unlocked: {named}. Give the passphrase that opens them (or their key "
            "files). Nothing was counted, released or spent."
        )


async def check_keys(conn: Connection, scope: Scope, keys: Mapping[uuid.UUID, UnlockedKey]) -> None:
    """Refuse, before anything is read, a period that needs a key that was not unlocked:
    every key that took answers in some week of it (from the keys' weeks alone). Counting
    without one would release (and pay for) numbers that leave out what it sealed, for good."""
    first, end = scope.period.weeks()
    needed = [a for a in await key_weeks(conn, scope.organisation_id) if a.covers(first, end)]
    missing = [active for active in needed if active.key_id not in keys]
    if missing:
        raise KeysMissing(scope.period, missing)


async def waiting_for(conn: Connection, scope: Scope, missing: Sequence[Active]) -> int:
    """How many of the scope's submissions arrived in weeks when the missing keys took
    answers: for the key holder's terminal only (an exact count), never stored or shown."""
    first, end = scope.period.weeks()
    weeks = [
        (max(first, a.first), min(end, a.last + dt.timedelta(days=7)) if a.last else end)
        for a in missing
    ]
    waiting: int = await conn.fetchval(
        "SELECT count(*)"
        + IN_SCOPE
        + " AND EXISTS (SELECT 1 FROM unnest($6::date[], $7::date[]) AS w(first, stop) "
        "WHERE received_week >= w.first AND received_week < w.stop)",
        scope.organisation_id,
        scope.survey_id,
        scope.program_id,
        first,
        end,
        [w[0] for w in weeks],
        [w[1] for w in weeks],
    )
    return waiting


def counter(
    conn: Connection,
    scope: Scope,
    *,
    layout: Layout,
    keys: Mapping[uuid.UUID, UnlockedKey],
    database_url: str | None = None,
    progress: Progress | None = None,
) -> Count:
    """What ``make_release`` calls to count: the tally with how many submissions were counted
    and set aside (for the key holder's eyes only, never stored), and the metadata published
    beside the release (the privacy unit: definitions only). What was set aside is left out
    of the tally and the release is made whatever it was: it changes nothing but the noised
    counts."""

    async def count() -> tuple[Counted, dict[str, Any]]:
        await check_keys(conn, scope, keys)
        counted = await count_period(
            conn, scope, layout=layout, keys=keys, database_url=database_url, progress=progress
        )
        return counted, await privacy_unit(conn, scope)

    return count


async def privacy_unit(conn: Connection, scope: Scope) -> dict[str, Any]:
    """What one unit of the guarantee is, from how invitations were issued (staff's data),
    never from which submissions arrived."""
    has_open_link = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM invitation_batches
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
