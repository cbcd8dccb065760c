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
        now = self._clock()
        if now - self._rotated >= self.window or len(self._current) >= MAX_KEYS:
            stale = now - self._rotated >= 2 * self.window
            self._previous = {} if stale else self._current
            self._current = {}
            self._rotated = now
        key = hashlib.blake2b("\0".join(parts).encode(), key=self._key, digest_size=16).digest()
        count = self._current.get(key, 0)
        if count + self._previous.get(key, 0) >= self.limit:
            return False
        self._current[key] = count + 1
        return True

    def __len__(self) -> int:
        """How many keys are remembered (both generations)."""
        return len(self._current.keys() | self._previous.keys())
