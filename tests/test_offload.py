"""Lanes: bounded, refusing at once when full, at a lower CPU priority than the event loop,
and a process lane that comes back after its worker dies."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from feedback.offload import NICENESS, Busy, Lane


def _own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_a_full_lane_refuses_at_once_and_takes_work_again_when_free() -> None:
    lane = Lane("test", workers=1, waiting=1)
    gate = threading.Event()
    running = [asyncio.create_task(lane.run(gate.wait, 10)) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert lane.in_use == 2
    with pytest.raises(Busy):
        lane.refuse_if_full()
    with pytest.raises(Busy):
        await lane.run(sum, [1, 2])
    gate.set()
    assert await asyncio.gather(*running) == [True, True]
    assert lane.in_use == 0
    assert await lane.run(sum, [1, 2]) == 3


async def test_lane_threads_and_processes_run_below_the_loops_priority() -> None:
    threads = Lane("threads", workers=1, waiting=0)
    processes = Lane("processes", workers=1, waiting=0, processes=True)
    before = _own_nice()
    lowered = min(19, before + NICENESS)
    assert await threads.run(_own_nice) == lowered
    assert await processes.run(os.getpriority, os.PRIO_PROCESS, 0) == lowered
    assert _own_nice() == before  # the loop's own thread is left as it was


async def test_a_process_lane_whose_worker_dies_says_busy_then_works_again() -> None:
    lane = Lane("processes", workers=1, waiting=0, processes=True)
    child = await lane.run(os.getpid)
    assert child != os.getpid()
    with pytest.raises(Busy, match="stopped"):
        await lane.run(os._exit, 1)
    assert await lane.run(sum, [2, 3]) == 5
    assert await lane.run(os.getpid) != child
