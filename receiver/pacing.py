"""Long work on the event loop in slices: yield once a slice has run its time.

A webhook of many thousands of alerts is validated, routed, decided and written on the
loop; done in one go it would hold health checks and every other request until it ends.
Work loops ask ``due()`` per item (a clock read) and ``await pause()`` when it says so.
"""

from __future__ import annotations

import asyncio
import time

# Long enough that yielding costs nothing measurable, short enough that a health check
# waits a few of these at most, whatever the size of the webhook being worked through.
SLICE_SECONDS = 0.01


class Pacer:
    """Tells a loop over many items when to let the event loop run other work."""

    def __init__(self, seconds: float = SLICE_SECONDS) -> None:
        self.seconds = seconds
        self._until = time.perf_counter() + seconds

    def due(self) -> bool:
        """Whether this slice has used its time: the caller should ``await pause()``."""
        return time.perf_counter() >= self._until

    async def pause(self) -> None:
        """Let the loop run what is ready, then start a new slice."""
        await asyncio.sleep(0)
        self._until = time.perf_counter() + self.seconds
