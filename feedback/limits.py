"""Rate limits that remember no address: in memory, under a keyed hash whose key is random per
process, forgotten after two windows (minutes), never logged or stored.

Counts live in two generations, the current window's and the last one's; a key's count is
the sum of both, and the generations rotate once per window, so every call is O(1).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

MAX_KEYS = 200_000  # past this, rotate early: memory stays bounded under a flood


class RateLimiter:
    def __init__(
        self, *, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._current: dict[bytes, int] = {}
        self._previous: dict[bytes, int] = {}
        self._rotated = clock()

    def allow(self, *parts: str) -> bool:
        """Count one hit for ``parts``; False once they reach ``limit`` within about a window."""
        if self.blocked(*parts):
            return False
        self.count(*parts)
        return True

    def blocked(self, *parts: str) -> bool:
        """Whether ``parts`` have reached ``limit`` within about a window (counts nothing)."""
        self._rotate()
        key = self._key_of(parts)
        return self._current.get(key, 0) + self._previous.get(key, 0) >= self.limit

    def count(self, *parts: str) -> None:
        """Count one hit for ``parts``: after the fact, once it is known to be a real one."""
        self._rotate()
        key = self._key_of(parts)
        self._current[key] = self._current.get(key, 0) + 1

    def give_back(self, *parts: str) -> None:
        """Undo one hit counted for ``parts`` (a reservation that turned out not to count)."""
        key = self._key_of(parts)
        for generation in (self._current, self._previous):
            if generation.get(key, 0) > 0:
                generation[key] -= 1
                if not generation[key]:
                    del generation[key]
                return

    def _key_of(self, parts: tuple[str, ...]) -> bytes:
        return hashlib.blake2b("\0".join(parts).encode(), key=self._key, digest_size=16).digest()

    def _rotate(self) -> None:
        now = self._clock()
        if now - self._rotated >= self.window or len(self._current) >= MAX_KEYS:
            stale = now - self._rotated >= 2 * self.window
            self._previous = {} if stale else self._current
            self._current = {}
            self._rotated = now

    def __len__(self) -> int:
        """How many keys are remembered (both generations)."""
        return len(self._current.keys() | self._previous.keys())
