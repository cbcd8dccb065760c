"""Advisory lock keys that more than one package takes. Advisory locks leave no row behind,
so taking one records nothing about when it was taken."""

from __future__ import annotations

# Taken by the mixing job (exclusive) while it moves submissions, and by a release (shared)
# while it marks the submissions it counted: a mix never runs between the two.
MOVING_SUBMISSIONS = 0x6D6978  # "mix"
