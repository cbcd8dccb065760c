"""CPU-heavy work off the event loop, in lanes of bounded width and bounded queue.

A lane runs its work in a few threads (argon2id and libsodium release the GIL; zxcvbn and
chart drawing do not, but in a thread they at least let the loop take turns), lets a few more
calls wait, and refuses the rest at once with ``Busy``, which the web apps answer 503: a flood
of logins or passphrase checks then costs the flood, not the survivors' pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from feedback.errors import FeedbackError

P = ParamSpec("P")
T = TypeVar("T")


class Busy(FeedbackError):
    """Too much of this kind of work is running or waiting already: try again shortly."""


class Lane:
    def __init__(self, name: str, *, workers: int, waiting: int) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._room = workers + waiting
        self._taken = 0

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._taken >= self._room:
            raise Busy(f"too many {self.name} jobs at once")
        self._taken += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, lambda: work(*args, **kwargs))
        finally:
            self._taken -= 1

    @property
    def in_use(self) -> int:
        return self._taken


# argon2id at INTERACTIVE cost: about 60 ms and 64 MiB each, so four at once.
PASSWORDS = Lane("argon2id", workers=4, waiting=12)
# zxcvbn: up to seconds for a hostile 72-character input, holding the GIL.
STRENGTH = Lane("zxcvbn", workers=1, waiting=2)
# Charts (vl-convert) and QR sheets (segno): tens of milliseconds to seconds each.
DRAWING = Lane("drawing", workers=2, waiting=8)
