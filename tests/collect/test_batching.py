"""Sealed posts form their own batches: at once when a slot is free, together while the slots
are busy, and every post answered only after its batch is committed. The batches are stored
in the survivor app's role, as the app stores them."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from feedback.collect import queries
from feedback.collect.batching import SealedBatcher
from feedback.db import Connection, Pool
from feedback.envelope import Envelope
from feedback.publish.invitations import create_batch
from feedback.sealing import seal
from feedback.tokens import hash_token
from tests import factories


async def items(conn: Connection, count: int) -> list[queries.SealedItem]:
    keyed = await factories.keyed_tenant(conn)
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=count)
    sealed = seal(keyed.private_key.public_key, Envelope("rights-based", 1, "en").to_plaintext())
    return [
        queries.SealedItem(hash_token(token), keyed.tenant.key_id, sealed, os.urandom(32))
        for token in batch.tokens
    ]


@pytest.fixture
def sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch stored (the real statement runs)."""
    seen: list[int] = []
    real = queries.store_sealed_batch

    async def recording(conn: Connection, batch: list[queries.SealedItem], **kw: Any) -> Any:
        seen.append(len(batch))
        return await real(conn, batch, **kw)

    monkeypatch.setattr(queries, "store_sealed_batch", recording)
    return seen


async def test_posts_read_together_go_as_one_batch(
    conn: Connection, survivor_pool: Pool, sizes: list[int]
) -> None:
    posts = await items(conn, 12)
    batcher = SealedBatcher(survivor_pool, slots=1, max_batch=5)
    results = await asyncio.gather(*(batcher.store(item) for item in posts))
    assert all(result is not None for result in results)
    assert sizes == [5, 5, 2]  # one slot: batches of at most five, one after another
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 12


async def test_posts_that_arrive_while_the_slots_are_busy_wait_together(
    conn: Connection, survivor_pool: Pool, sizes: list[int]
) -> None:
    posts = await items(conn, 9)
    batcher = SealedBatcher(survivor_pool, slots=1)
    first = asyncio.ensure_future(batcher.store(posts[0]))
    await asyncio.sleep(0)  # the first post's batch starts alone...
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.store(item)) for item in posts[1:]]
    await asyncio.gather(first, *rest)  # ...and the other eight go together after it
    assert sizes == [1, 8]
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 9


async def test_a_reused_token_in_one_batch_is_stored_once(
    conn: Connection, survivor_pool: Pool, sizes: list[int]
) -> None:
    [post] = await items(conn, 1)
    again = queries.SealedItem(post.token_hash, post.key_id, post.ciphertext, os.urandom(32))
    batcher = SealedBatcher(survivor_pool, slots=1)
    results = await asyncio.gather(batcher.store(post), batcher.store(again))
    assert sizes == [2]
    assert sorted(r is not None and r.stored for r in results) == [False, True]
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
