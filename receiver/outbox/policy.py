"""Backoff: when the worker tries a failed delivery again (the failure classes are in
``receiver.domain.failures``)."""

from __future__ import annotations

import random

BASE_DELAY = 1.0
MAX_DELAY = 300.0


def backoff_delay(
    attempts: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
    base: float = BASE_DELAY,
    cap: float = MAX_DELAY,
) -> float:
    """Exponential backoff with full jitter, never sooner than the server's Retry-After."""
    ceiling = min(cap, base * (2 ** min(attempts, 30)))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
