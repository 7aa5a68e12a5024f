"""The timer loop: fires due escalation steps and ack deadlines from the store."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from receiver.service import IncidentService
from receiver.store.base import StoreUnavailable

log = structlog.get_logger("receiver.timers")


class TimerLoop:
    """Polls for due timers; a commit that plans new ones wakes it at once."""

    def __init__(self, service: IncidentService, poll_seconds: float = 1.0) -> None:
        self.service = service
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due timers now."""
        self._wake.set()

    async def run(self) -> None:
        """Fire timers until cancelled."""
        while True:
            try:
                fired = await self.service.fire_due_timers()
            except StoreUnavailable as exc:
                log.warning("timers_store_unavailable", error=str(exc))
                fired = 0
            except Exception:  # a bug must not stop paging for good: log, wait, go on
                log.exception("timers_failed")
                fired = 0
            if fired == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
                self._wake.clear()
