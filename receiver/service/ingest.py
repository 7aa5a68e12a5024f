"""Group commit: webhooks that arrive while a transaction runs share the next one.

Each caller still gets its answer only after the transaction holding its alerts has
committed, so "200 only after commit" holds while one fsync serves many webhooks. A webhook
of many alerts takes seconds to route and decide; it goes alone, beside the queue, so the
small ones arriving meanwhile are not held behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from receiver.domain.model import Alert
from receiver.service.incidents import IncidentService
from receiver.service.units import IngestResult
from receiver.store.base import StoreUnavailable

log = structlog.get_logger("receiver.service.ingest")

_Pending = tuple[Sequence[Alert], "asyncio.Future[IngestResult]"]


class IngestQueue:
    """Queues webhooks and commits them in batches, in arrival order."""

    name = "ingest"

    def __init__(
        self,
        service: IncidentService,
        max_webhooks: int = 64,
        max_alerts: int = 20_000,
        alone_alerts: int = 2_000,
    ) -> None:
        self.service = service
        self.max_webhooks = max_webhooks
        self.max_alerts = max_alerts
        self.alone_alerts = alone_alerts
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()  # None: stop

    async def submit(self, alerts: Sequence[Alert]) -> IngestResult:
        """Wait until these alerts are committed; raises StoreUnavailable if they were not."""
        if len(alerts) >= self.alone_alerts:
            return await self._alone(alerts)
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((alerts, future))
        return await future

    def _take(self, first: _Pending) -> list[_Pending]:
        batch, alerts = [first], len(first[0])
        while (
            not self._queue.empty() and len(batch) < self.max_webhooks and alerts < self.max_alerts
        ):
            item = self._queue.get_nowait()
            if item is None:  # stopping: after this batch
                self._queue.put_nowait(None)
                break
            batch.append(item)
            alerts += len(item[0])
        return batch

    async def run(self) -> None:
        """Commit queued webhooks until stopped or cancelled."""
        while True:
            first = await self._queue.get()
            if first is None:
                return
            await self._commit(self._take(first))

    def stop(self) -> None:
        """Return from ``run`` once the batch under way is committed (the HTTP server has
        stopped by then: nothing more is queued)."""
        self._queue.put_nowait(None)

    async def finish(self) -> None:
        """Each batch's callers heard of it when it committed: nothing is left."""

    async def _alone(self, alerts: Sequence[Alert]) -> IngestResult:
        """Commit a big webhook in a transaction of its own, beside the queue."""
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        await self._commit([(alerts, future)])
        return await future

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self.service.ingest_many([alerts for alerts, _ in batch])
        except StoreUnavailable as exc:
            for _, future in batch:
                _settle(future, exc=exc)
            return
        except Exception:
            if len(batch) == 1:
                log.exception("ingest_failed")
                _settle(batch[0][1], exc=StoreUnavailable("ingest failed"))
                return
            # One bad webhook must not fail its neighbours: retry them one by one.
            log.warning("ingest_batch_failed", webhooks=len(batch), exc_info=True)
            for item in batch:
                await self._commit([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[IngestResult],
    result: IngestResult | None = None,
    exc: BaseException | None = None,
) -> None:
    if future.done():  # the caller went away; its alerts are committed or not, either way
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert result is not None
        future.set_result(result)
