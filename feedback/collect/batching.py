"""Browser-sealed posts stored in small batches: those that arrive within a millisecond of
one another share one statement and one commit. Each post's response waits for the commit of
its batch, so nothing accepted is lost; under light load a batch is a single post."""

from __future__ import annotations

import asyncio
import logging

from feedback.collect import queries
from feedback.db import Pool
from feedback.weeks import current_week

log = logging.getLogger(__name__)

Result = queries.SealedStore | None


class SealedBatcher:
    def __init__(self, pool: Pool, *, window: float = 0.001, max_batch: int = 64) -> None:
        self.pool = pool
        self.window = window
        self.max_batch = max_batch
        self._open: list[tuple[queries.SealedItem, asyncio.Future[Result]]] | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def store(self, item: queries.SealedItem) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        if self._open is None or len(self._open) >= self.max_batch:
            batch = self._open = [(item, future)]
            task = asyncio.create_task(self._flush_after_window(batch))
            self._flushing.add(task)  # a task of its own: a cancelled request cannot strand it
            task.add_done_callback(self._flushing.discard)
        else:
            self._open.append((item, future))
        return await future

    async def _flush_after_window(
        self, batch: list[tuple[queries.SealedItem, asyncio.Future[Result]]]
    ) -> None:
        await asyncio.sleep(self.window)
        if self._open is batch:
            self._open = None
        try:
            async with self.pool.acquire() as conn:
                results = await queries.store_sealed_batch(
                    conn, [item for item, _ in batch], week=current_week()
                )
        except Exception as error:  # the whole batch failed, so nothing of it was stored
            log.exception("storing a batch of %d sealed submissions failed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
