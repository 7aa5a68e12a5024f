"""The outbox worker: claim due deliveries, deliver, then record the outcome."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from receiver.metrics import Metrics
from receiver.notify.base import Notifier
from receiver.outbox.policy import DeliveryError, backoff_delay
from receiver.polling import Poller
from receiver.store.base import DeliveryOutcome, OutboxItem, Store

log = structlog.get_logger("receiver.outbox")


class OutboxWorker:
    """Delivers outbox rows with backoff and jitter; dead-letters what keeps failing."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        metrics: Metrics,
        clock: Callable[[], datetime],
        *,
        max_age: timedelta = timedelta(hours=24),
        poll_seconds: float = 1.0,
        lease_seconds: float = 120.0,
        batch: int = 50,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.metrics = metrics
        self.clock = clock
        self.max_age = max_age
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.batch = batch
        self.rng = rng or random.Random()
        self._poller = Poller("outbox", self.run_once, poll_seconds)
        self._finished: list[DeliveryOutcome] = []
        self._claimed: dict[int, OutboxItem] = {}  # claimed, not yet delivered

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._poller.wake()

    async def run(self) -> None:
        """Work until stopped or cancelled."""
        await self._poller.run()

    async def run_once(self) -> int:
        """Record the last batch's outcomes and claim the next batch in one transaction,
        then deliver it; returns how many items were delivered."""
        finished, self._finished = self._finished, []
        try:
            items = await self.store.claim_outbox(
                self.clock(), self.batch, self.lease_seconds, finished
            )
        except BaseException:
            self._finished = finished + self._finished  # try to record them again
            raise
        self._claimed.update((item.id, item) for item in items)
        await asyncio.gather(*(self._deliver_and_note(item) for item in items))
        return len(items)

    async def shutdown(self, task: asyncio.Task[None], grace_seconds: float) -> None:
        """Stop ``task`` (running ``run``): deliveries under way get ``grace_seconds`` to
        finish; then outcomes are recorded and unfinished claims released, so another
        replica can deliver them at once instead of after the lease."""
        if not await self._poller.stop_within(task, grace_seconds):
            log.warning("outbox_shutdown_timeout", in_flight=len(self._claimed))
        await self.flush()

    async def flush(self) -> None:
        """Record outcomes not yet written and release unfinished claims, claiming nothing
        new (on shutdown)."""
        released = [DeliveryOutcome(item_id, "release") for item_id in self._claimed]
        if self._finished or released:
            await self.store.claim_outbox(
                self.clock(), 0, self.lease_seconds, [*self._finished, *released]
            )
            self._finished, self._claimed = [], {}

    async def _deliver_and_note(self, item: OutboxItem) -> None:
        outcome = await self._deliver(item)
        self._claimed.pop(item.id, None)
        self._finished.append(outcome)
        label = {"sent": "sent", "retry": "retried", "dead": "failed"}[outcome.outcome]
        self.metrics.notifications.labels(item.channel, label).inc()

    async def _deliver(self, item: OutboxItem) -> DeliveryOutcome:
        notifier = self.notifiers.get(item.channel)
        error: DeliveryError
        if notifier is None:
            error = DeliveryError(f"no notifier for channel {item.channel!r}", retryable=False)
        else:
            try:
                await notifier.deliver(item)
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # an adapter bug must not kill the worker
                log.exception("delivery_crashed", outbox_id=item.id, channel=item.channel)
                error = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
            else:
                return DeliveryOutcome(item.id, "sent")
        return self._failed(item, error)

    def _failed(self, item: OutboxItem, error: DeliveryError) -> DeliveryOutcome:
        now = self.clock()
        too_old = now - item.created_at > self.max_age
        fields = {
            "outbox_id": item.id,
            "channel": item.channel,
            "kind": item.kind,
            "incident_id": item.incident_id,
            "attempts": item.attempts + 1,
            "error": str(error),
        }
        if error.retryable and not too_old:
            delay = backoff_delay(item.attempts, error.retry_after, self.rng)
            log.warning("delivery_retry", retry_in_seconds=round(delay, 3), **fields)
            return DeliveryOutcome(item.id, "retry", str(error), now + timedelta(seconds=delay))
        log.error("delivery_dead_lettered", reason="too old" if too_old else "permanent", **fields)
        return DeliveryOutcome(item.id, "dead", str(error))
