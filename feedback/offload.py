"""CPU-heavy work off the event loop, in lanes of bounded width and bounded queue, at a lower
CPU priority than the loop.

A lane runs its work in a few threads, or in a process of its own for pure-Python work that
would otherwise hold the GIL for seconds (zxcvbn); it lets a few more calls wait and refuses
the rest at once with ``Busy``, which the web apps answer 503. Its threads and processes run
at a raised nice value, so that when the machine's cores are all busy with a flood of logins
or passphrase checks, the scheduler still gives the event loop (and so survivors' pages and
webhooks) its turn first: the flood costs the flood.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

from feedback.errors import FeedbackError

P = ParamSpec("P")
T = TypeVar("T")
NICENESS = 10  # added to the nice value: the event loop wins the cores it needs


class Busy(FeedbackError):
    """Too much of this kind of work is running or waiting already: try again shortly."""


def _lower_priority() -> None:
    """Raise the calling thread's nice value (on Linux, per thread; elsewhere, nothing)."""
    try:
        thread = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + NICENESS)
        )
    except (AttributeError, OSError):
        pass


def _worker_process() -> None:
    """A process lane's worker: lower priority, and gone soon after its parent is (killed
    with SIGKILL, the server would otherwise leave it waiting for work forever)."""
    _lower_priority()
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class Lane:
    def __init__(self, name: str, *, workers: int, waiting: int, processes: bool = False) -> None:
        self.name = name
        self._workers = workers
        self._processes = processes
        self._executor: Executor | None = None
        self._room = workers + waiting
        self._taken = 0

    def _started(self) -> Executor:
        if self._executor is None:
            if self._processes:
                self._executor = ProcessPoolExecutor(
                    max_workers=self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_process,
                )
            else:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._workers,
                    thread_name_prefix=self.name,
                    initializer=_lower_priority,
                )
        return self._executor

    def refuse_if_full(self) -> None:
        """``Busy`` now, before any other work, when a call would be refused anyway."""
        if self._taken >= self._room:
            raise Busy(f"too many {self.name} jobs at once")

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``work(*args, **kwargs)`` in the lane (for a process lane, ``work`` and its
        arguments must pickle); ``Busy`` when the lane and its queue are full."""
        self.refuse_if_full()
        self._taken += 1
        try:
            loop = asyncio.get_running_loop()
            executor = self._started()
            try:
                return await loop.run_in_executor(
                    executor, functools.partial(work, *args, **kwargs)
                )
            except BrokenProcessPool:
                # The worker process died (killed, out of memory): start afresh next time.
                if self._executor is executor:
                    self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
                raise Busy(f"the {self.name} worker stopped: try again") from None
        finally:
            self._taken -= 1

    @property
    def in_use(self) -> int:
        return self._taken


# argon2id at INTERACTIVE cost: about 60 ms and 64 MiB each.
PASSWORDS = Lane("argon2id", workers=1, waiting=8)
# The same for logins from a browser that logged into that account before (staff devices):
# a flood of logins fills PASSWORDS, never this.
KNOWN_DEVICES = Lane("argon2id-known", workers=1, waiting=4)
# zxcvbn: up to seconds for a hostile 72-character input; pure Python, so in a process.
STRENGTH = Lane("zxcvbn", workers=1, waiting=2, processes=True)
# Charts (vl-convert) and QR sheets (segno): tens of milliseconds to seconds each.
DRAWING = Lane("drawing", workers=2, waiting=8)
