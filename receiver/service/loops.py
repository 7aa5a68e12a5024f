"""Background loops, built and stopped one way: a ``Loop`` runs in a task for the app's
lifetime (``running``); stopping asks it to start no new work, gives the work under way a
grace period, cancels what is left, then lets the loop finish (record what it did).
``Poller`` is the loop that works while there is work and otherwise waits for a poll or a
wake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import structlog

from receiver.store.base import StoreUnavailable

log = structlog.get_logger("receiver.service.loops")


class Loop(Protocol):
    """A background loop of the app."""

    name: str

    async def run(self) -> None:
        """Work until stopped (or cancelled)."""

    def stop(self) -> None:
        """Start no new work: ``run`` returns once the work under way is done."""

    async def finish(self) -> None:
        """After ``run`` has ended or was cancelled: record what is left to record."""


async def stop_within(loop: Loop, task: asyncio.Task[None], grace_seconds: float) -> bool:
    """Stop ``task`` (running ``loop.run``): the work under way gets ``grace_seconds``,
    then the task is cancelled, and the loop finishes. True when it ended in time."""
    loop.stop()
    in_time = True
    try:
        async with asyncio.timeout(grace_seconds):
            await asyncio.shield(task)
    except TimeoutError:
        in_time = False
    except Exception:
        log.exception("loop_failed", loop=loop.name)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await loop.finish()
    return in_time


@contextlib.asynccontextmanager
async def running(loop: Loop, grace_seconds: float) -> AsyncIterator[None]:
    """Run ``loop`` in a task while the block runs; at its end, ``stop_within``."""
    task = asyncio.create_task(loop.run(), name=loop.name)
    try:
        yield
    finally:
        if not await stop_within(loop, task, grace_seconds):
            log.warning("loop_shutdown_timeout", loop=loop.name, grace_seconds=grace_seconds)


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

    async def finish(self) -> None:
        """Nothing is left to record: each step commits what it did."""

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
