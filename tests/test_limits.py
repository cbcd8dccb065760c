from __future__ import annotations

from feedback.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limit_per_key_and_window() -> None:
    clock = Clock()
    limiter = RateLimiter(limit=3, window=60, clock=clock)
    assert [limiter.allow("link", "client") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("link", "other client")
    clock.now = 61  # the last window's hits still count...
    assert not limiter.allow("link", "client")
    clock.now = 125  # ...but not two windows later
    assert limiter.allow("link", "client")


def test_a_hit_given_back_no_longer_counts_and_leaves_no_key() -> None:
    clock = Clock()
    limiter = RateLimiter(limit=2, window=60, clock=clock)
    assert limiter.allow("link", "client")
    assert limiter.allow("link", "client")
    clock.now = 61  # one generation on: the hits are in the previous window
    assert not limiter.allow("link", "client")
    limiter.give_back("link", "client")
    assert limiter.allow("link", "client")
    limiter.give_back("link", "client")
    limiter.give_back("link", "client")
    limiter.give_back("link", "client")  # more than was counted: nothing below zero
    assert len(limiter) == 0
    assert limiter.allow("link", "client")
    assert limiter.allow("link", "client")
    assert not limiter.allow("link", "client")


def test_everything_is_forgotten_within_two_windows() -> None:
    clock = Clock()
    limiter = RateLimiter(limit=3, window=60, clock=clock)
    for n in range(100):
        limiter.allow("link", str(n))
    assert len(limiter) == 100
    clock.now = 121
    limiter.allow("x")
    assert len(limiter) == 1


def test_remembers_no_address_in_the_clear() -> None:
    limiter = RateLimiter(limit=3, window=60)
    limiter.allow("token", "203.0.113.9")
    assert b"203.0.113.9" not in b"".join(limiter._current)  # keyed hashes only
