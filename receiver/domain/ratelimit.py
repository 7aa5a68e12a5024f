"""Sliding-window rate limits, kept in memory per process: pure, the time is passed in."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window``; a refused hit does not count."""

    MAX_KEYS = 100_000  # beyond this many keys, those idle longest are forgotten

    def __init__(self, limit: int, window: timedelta) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[datetime]] = {}

    def hit(self, key: str, now: datetime) -> float | None:
        """Count a hit now; None if allowed, else the seconds until one would be."""
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        self._hits[key] = hits  # most recently used last
        if len(hits) >= self.limit:
            return max(1.0, (hits[0] + self.window - now).total_seconds())
        hits.append(now)
        while len(self._hits) > self.MAX_KEYS:
            del self._hits[next(iter(self._hits))]
        return None
