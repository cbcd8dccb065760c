"""Browser-sealed posts stored in batches that form by themselves (group commit): a post is
stored at once when a connection slot is free; while every slot is busy, the posts that arrive
wait together and go as one statement and one commit as soon as a slot frees. Under light load
a batch is a single post and waits for nothing; under heavy load batches grow to match the
time a commit takes. Each post's response waits for the commit of its batch, so nothing
accepted is lost."""

from __future__ import annotations

import asyncio

from feedback.collect import queries
from feedback.db import Pool
from feedback.web import DATABASE_GONE, access_log, connection

Result = queries.SealedStore | None
Waiting = list[tuple[queries.SealedItem, asyncio.Future[Result]]]


class SealedBatcher:
    def __init__(self, pool: Pool, *, slots: int = 4, max_batch: int = 64) -> None:
        self.pool = pool
        self.slots = slots  # batches being stored at once (each on a connection of its own)
        self.max_batch = max_batch
        self._waiting: Waiting = []
        self._running = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, item: queries.SealedItem) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if not self._scheduled:
            # Start batches at the end of this turn of the loop, so that the posts read in
            # the same turn go together.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        while self._waiting and self._running < self.slots:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            self._running += 1
            task = asyncio.create_task(self._flush(batch))
            self._tasks.add(task)  # a task of its own: a cancelled request cannot strand it
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: Waiting) -> None:
        try:
            async with connection(self.pool) as conn:
                results = await queries.store_sealed_batch(conn, [item for item, _ in batch])
        except Exception as error:  # the whole batch failed, so nothing of it was stored
            # No count, and the hour only (the access log's stamp): a log line's time with a
            # number of posts would date survivors' answers.
            if isinstance(error, DATABASE_GONE):
                access_log.warning("storing sealed answers failed: the database is unavailable")
            else:
                access_log.exception("storing sealed answers failed; nothing of them was kept")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        finally:
            self._running -= 1
            self._start()  # whatever arrived meanwhile goes now, as one batch
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
