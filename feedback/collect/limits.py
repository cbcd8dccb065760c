"""Rate limits that remember no address: in memory, under a keyed hash whose key is random per
process, forgotten when the window ends (minutes), never logged or stored."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, *, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._hits: dict[bytes, tuple[float, int]] = {}

    def allow(self, *parts: str) -> bool:
        """Count one hit for ``parts``; False once they passed ``limit`` in this window."""
        now = self._clock()
        if len(self._hits) > 10_000:
            self._forget(now)
        key = hashlib.blake2b("\0".join(parts).encode(), key=self._key, digest_size=16).digest()
        started, count = self._hits.get(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        self._hits[key] = (started, count + 1)
        return count < self.limit

    def _forget(self, now: float) -> None:
        self._hits = {k: v for k, v in self._hits.items() if now - v[0] < self.window}

    def __len__(self) -> int:
        self._forget(self._clock())
        return len(self._hits)
