"""A background loop that works while there is work and otherwise waits for a poll or a wake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from receiver.store.base import StoreUnavailable

log = structlog.get_logger("receiver.polling")


class Poller:
    """Calls ``step`` (which returns how much it did) until cancelled: again at once after
    work, else after ``poll_seconds`` or an earlier ``wake()``."""

    def __init__(self, name: str, step: Callable[[], Awaitable[int]], poll_seconds: float) -> None:
        self.name = name
        self.step = step
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Return from ``run`` once the step under way is done, without starting another."""
        self._stopping = True
        self._wake.set()

    async def stop_within(self, task: asyncio.Task[None], grace_seconds: float) -> bool:
        """Stop ``task`` (running ``run``): the step under way gets ``grace_seconds`` to
        finish, then the task is cancelled. True when it finished in time."""
        self.stop()
        try:
            async with asyncio.timeout(grace_seconds):
                await asyncio.shield(task)
            return True
        except TimeoutError:
            return False
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Work until stopped or cancelled; a failing step is logged and tried again at the
        next poll."""
        while not self._stopping:
            try:
                done = await self.step()
            except StoreUnavailable as exc:
                log.warning("store_unavailable", loop=self.name, error=str(exc))
                done = 0
            except Exception:  # a bug must not stop deliveries or pages for good
                log.exception("loop_step_failed", loop=self.name)
                done = 0
            if done == 0 and not self._stopping:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # arrives as the wake does, and the loop would then never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
                self._wake.clear()
