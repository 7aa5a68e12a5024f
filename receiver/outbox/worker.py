"""The outbox worker: one lane per channel, each claiming due deliveries as its slots free up.

A lane delivers at most ``concurrency`` rows of its channel at once. When one delivery ends,
its outcome is recorded in the same transaction that claims the next row, so a slow or
failing channel (JIRA taking seconds per call, Slack rate-limited) holds up only its own
lane: a page never waits for a JIRA issue to be created.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from receiver.domain.delivery import Kind, Notifier, OutboxItem, Outcome, Prior
from receiver.domain.failures import DeliveryError, Reason
from receiver.metrics import Metrics
from receiver.outbox.policy import backoff_delay
from receiver.store.base import DeliveryOutcome, Store

log = structlog.get_logger("receiver.outbox")

# How many rows of one channel are delivered at once, unless the settings say otherwise:
# JIRA Cloud throttles a bot at a few requests a second, Slack posts at about one a second
# per channel; pages go to different people and should never queue behind each other.
DEFAULT_CONCURRENCY: dict[str, int] = {
    "jira": 8,
    "slack": 4,
    "pager": 8,
    "telegram": 8,  # pages too: Telegram takes about 30 messages a second from a bot
    "email": 4,
    "announce": 2,
    "announce_telegram": 1,  # one channel of testers: Telegram limits a group to 20 a minute
    "digest": 1,
    "reporter": 2,
}
FALLBACK_CONCURRENCY = 2
# After a delivery ends while others of its lane are still under way, the lane waits this
# long for more to end before it records them and claims again: the outcomes share one
# transaction instead of one commit each. Pages wait for nothing; the lanes that wait leave
# the store to them meanwhile.
SETTLE_SECONDS: dict[str, float] = {"jira": 0.05, "slack": 0.02, "announce": 0.05, "digest": 0.05}
# An adapter that raises something unexpected is tried this often in all, then dead-lettered,
# so a bug never holds back an incident's later deliveries on that channel for long.
MAX_CRASHES = 3
OUTCOME_LABELS = {Outcome.SENT: "sent", Outcome.RETRY: "retried", Outcome.DEAD: "failed"}


def lane_concurrency(settings: Mapping[str, int], channel: str) -> int:
    """How many deliveries of a channel run at once: the setting, else the default."""
    return settings.get(channel) or DEFAULT_CONCURRENCY.get(channel, FALLBACK_CONCURRENCY)


class Lane:
    """Delivers one channel's rows, at most ``concurrency`` at a time, in order per incident
    (the store hands out only the oldest pending row of each (channel, incident))."""

    def __init__(self, worker: OutboxWorker, channel: str, concurrency: int) -> None:
        self.worker = worker
        self.channel = channel
        self.concurrency = max(1, concurrency)
        self.finished: list[DeliveryOutcome] = []
        self.failed_pages: list[OutboxItem] = []  # pages among finished that failed for good
        self.claimed: dict[int, OutboxItem] = {}  # claimed, not yet delivered
        self._tasks: set[asyncio.Task[None]] = set()
        self._kick = asyncio.Event()
        self._stopping = False
        self.settle_seconds = SETTLE_SECONDS.get(channel, 0.0)

    def wake(self) -> None:
        """Claim now: new rows may be due, or a slot came free."""
        self._kick.set()

    async def claim(self) -> list[OutboxItem]:
        """Record finished outcomes and claim as many due rows as there are free slots."""
        free = self.concurrency - len(self.claimed)
        finished, self.finished = self.finished, []
        failed, self.failed_pages = self.failed_pages, []
        if free <= 0 and not finished:
            return []
        w = self.worker
        try:
            items = await w.store.claim_outbox(
                w.clock(), max(0, free), w.lease_seconds, finished, channel=self.channel
            )
        except BaseException:
            self.finished = finished + self.finished  # recorded with the next claim
            self.failed_pages = failed + self.failed_pages
            raise
        self.claimed.update((item.id, item) for item in items)
        await self.worker.recorded(finished, failed)
        return await w.with_prior(items)

    def start(self, item: OutboxItem) -> asyncio.Task[None]:
        """Deliver one claimed row in the background; its end frees the slot."""
        task = asyncio.create_task(self._deliver(item), name=f"deliver-{self.channel}-{item.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            outcome = await self.worker.deliver(item)
        except asyncio.CancelledError:
            return  # shutdown: the claim is released by flush
        self.claimed.pop(item.id, None)
        self.finished.append(outcome)
        if outcome.outcome is Outcome.DEAD and item.kind == Kind.PAGE:
            self.failed_pages.append(replace(item, payload={**item.payload,
                                                            "error": outcome.error}))  # fmt: skip
        self._kick.set()

    async def run(self, poll_seconds: float) -> None:
        """Claim and deliver until stopped; idle, look again after ``poll_seconds`` or a wake."""
        while not self._stopping:
            self._kick.clear()
            try:
                items = await self.claim()
            except Exception as exc:  # StoreUnavailable or a bug: try again at the next poll
                log.warning("outbox_claim_failed", channel=self.channel, error=str(exc)[:300])
                items = []
            for item in items:
                self.start(item)
            # Full, or nothing more due: a finished delivery or a commit wakes the lane.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_seconds):
                    await self._kick.wait()
            if self.finished and self.claimed and self.settle_seconds and not self._stopping:
                await asyncio.sleep(self.settle_seconds)  # others under way may end meanwhile

    async def run_until_stopped(self, poll_seconds: float) -> None:
        """``run``, then the deliveries under way to their end; cancelled meanwhile, those
        are cancelled too (their claims are released by the worker's flush)."""
        try:
            await self.run(poll_seconds)
            while self._tasks:
                await asyncio.wait(set(self._tasks))
        except asyncio.CancelledError:
            late = set(self._tasks)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
            raise

    def stop(self) -> None:
        """Claim nothing more; ``run`` returns at once."""
        self._stopping = True
        self._kick.set()

    async def step(self) -> int:
        """Claim once and deliver what was claimed to the end (tests drive lanes this way)."""
        items = await self.claim()
        await asyncio.gather(*(self.start(item) for item in items))
        return len(items)


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
        concurrency: Mapping[str, int] | None = None,
        rng: random.Random | None = None,
        on_issue: Callable[[Sequence[int]], Awaitable[None]] | None = None,
        translate: Callable[[Sequence[OutboxItem]], Awaitable[list[OutboxItem]]] | None = None,
        on_page_failed: Callable[[Sequence[OutboxItem]], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.metrics = metrics
        self.clock = clock
        self.max_age = max_age
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.rng = rng or random.Random()
        self.on_issue = on_issue  # told of incidents whose JIRA issue was just recorded
        self.translate = translate  # gives rows an earlier version wrote their instructions
        self.on_page_failed = on_page_failed  # told of pages dead-lettered (next channel)
        self.lanes = {
            channel: Lane(self, channel, lane_concurrency(concurrency or {}, channel))
            for channel in notifiers
        }

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        for lane in self.lanes.values():
            lane.wake()

    name = "outbox-worker"

    async def run(self) -> None:
        """Run every lane until stopped (and its deliveries under way ended) or cancelled."""
        await asyncio.gather(
            *(lane.run_until_stopped(self.poll_seconds) for lane in self.lanes.values())
        )

    def stop(self) -> None:
        """Claim nothing more; deliveries under way go on to their end."""
        for lane in self.lanes.values():
            lane.stop()

    async def finish(self) -> None:
        """Once stopped: record outcomes and release unfinished claims (``flush``)."""
        in_flight = sum(len(lane.claimed) for lane in self.lanes.values())
        if in_flight:
            log.warning("outbox_shutdown_timeout", in_flight=in_flight)
        try:
            await self.flush()
        except Exception:  # unrecorded deliveries are redone after the lease
            log.warning("outbox_flush_failed", exc_info=True)

    async def run_once(self) -> int:
        """Claim once on every lane and deliver all of it; returns how many were delivered.
        (The outcomes are recorded with the next claim, or by ``flush``.)"""
        counts = await asyncio.gather(*(lane.step() for lane in self.lanes.values()))
        return sum(counts)

    async def flush(self) -> None:
        """Record outcomes not yet written and release unfinished claims, claiming nothing
        new (on shutdown)."""
        finished: list[DeliveryOutcome] = []
        for lane in self.lanes.values():
            finished += lane.finished
            finished += [DeliveryOutcome(item_id, Outcome.RELEASE) for item_id in lane.claimed]
        if finished:
            await self.store.claim_outbox(self.clock(), 0, self.lease_seconds, finished)
            for lane in self.lanes.values():
                lane.finished, lane.claimed = [], {}

    async def with_prior(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """The items with what earlier deliveries of their incidents recorded (read after
        the claim, whose transaction recorded the outcomes before it), rows of an earlier
        version given their instructions."""
        ids = sorted({item.incident_id for item in items if item.incident_id is not None})
        if not ids:
            return list(items)
        try:
            prior = await self.store.prior_effects(ids)
            if self.translate is not None:
                items = await self.translate(items)
        except BaseException:
            self.release_later(items)
            raise
        return [
            replace(item, prior=prior.get(item.incident_id, Prior()))
            if item.incident_id is not None
            else item
            for item in items
        ]

    def release_later(self, items: Sequence[OutboxItem]) -> None:
        """Hand claimed items back with the next claim (their effects could not be read)."""
        for item in items:
            lane = self.lanes.get(item.channel)
            if lane is not None and lane.claimed.pop(item.id, None) is not None:
                lane.finished.append(DeliveryOutcome(item.id, Outcome.RELEASE))

    async def recorded(
        self, finished: Sequence[DeliveryOutcome], failed: Sequence[OutboxItem] = ()
    ) -> None:
        """Once outcomes are stored: tell of the pages that failed for good (their people are
        paged on their next channel) and the JIRA issues they recorded (best effort: a
        failure only leaves Slack showing "JIRA pending" until the incident's next event)."""
        if failed and self.on_page_failed is not None:
            try:
                await self.on_page_failed(failed)
            except Exception as exc:  # the retry timer moves them on instead
                log.warning("page_fallback_not_queued", outbox=[i.id for i in failed][:20],
                            error=str(exc)[:300])  # fmt: skip
        linked = [e.incident_id for o in finished for e in o.effects if e.kind == "jira_key"]
        if not linked or self.on_issue is None:
            return
        try:
            await self.on_issue(linked)
        except Exception as exc:
            log.warning("issue_link_not_queued", incidents=linked[:20], error=str(exc)[:300])

    async def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        """Hand one row to its channel's notifier; the outcome says what to record."""
        notifier = self.notifiers.get(item.channel)
        started = time.perf_counter()
        reason = Reason.NONE
        try:
            if notifier is None:
                raise DeliveryError(f"no notifier for channel {item.channel!r}", retryable=False)
            try:
                effects = await notifier.deliver(item)
            except DeliveryError:
                raise
            except Exception as exc:  # an adapter bug must not kill the lane
                log.exception("delivery_crashed", outbox_id=item.id, channel=item.channel)
                raise DeliveryError(
                    f"{type(exc).__name__}: {exc}"[:500],
                    retryable=item.attempts + 1 < MAX_CRASHES,
                    reason=Reason.CRASH,
                ) from exc
        except DeliveryError as error:
            reason = error.reason
            outcome = self._failed(item, error)
        else:
            outcome = DeliveryOutcome(item.id, Outcome.SENT, effects=tuple(effects or ()))
            self._observe_page(item, notifier)
        finally:
            self.metrics.delivery_duration.labels(item.channel).observe(
                time.perf_counter() - started
            )
        self.metrics.notifications.labels(
            item.channel, OUTCOME_LABELS[outcome.outcome], reason.value
        ).inc()
        return outcome

    def _observe_page(self, item: OutboxItem, notifier: Notifier | None) -> None:
        """A page reached its channel: how long after it became due."""
        if item.kind != Kind.PAGE:
            return
        due = item.payload.get("due_at")
        due_at = datetime.fromisoformat(due) if isinstance(due, str) else item.created_at
        severity = str(item.payload.get("severity", ""))
        medium = str(getattr(notifier, "medium", item.channel))
        latency = max(0.0, (self.clock() - due_at).total_seconds())
        self.metrics.page_latency.labels(medium, severity).observe(latency)

    def _failed(self, item: OutboxItem, error: DeliveryError) -> DeliveryOutcome:
        now = self.clock()
        too_old = now - item.created_at > self.max_age
        fields = {
            "outbox_id": item.id,
            "channel": item.channel,
            "kind": item.kind,
            "incident_id": item.incident_id,
            "attempts": item.attempts + 1,
            "reason": error.reason.value,
            "error": str(error),
        }
        if error.retryable and not too_old:
            delay = backoff_delay(item.attempts, error.retry_after, self.rng)
            log.warning("delivery_retry", retry_in_seconds=round(delay, 3), **fields)
            return DeliveryOutcome(
                item.id, Outcome.RETRY, str(error), now + timedelta(seconds=delay)
            )
        why = "too old" if too_old else ("crashed" if error.reason is Reason.CRASH else "permanent")
        log.error("delivery_dead_lettered", why=why, **fields)
        return DeliveryOutcome(item.id, Outcome.DEAD, str(error))
