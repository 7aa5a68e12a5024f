"""Retry classification and backoff: small pure functions the worker composes."""

from __future__ import annotations

import random
from datetime import UTC, datetime

BASE_DELAY = 1.0
MAX_DELAY = 300.0


class DeliveryError(Exception):
    """A failed delivery; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def is_retryable_status(status: int) -> bool:
    """429, 408 and 5xx are worth retrying; any other 4xx will fail the same way again."""
    return status in (408, 425, 429) or status >= 500


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse without a zone; they are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


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
