"""The weekly digest loop: sends the digest when its stored due time has come.

The due time lives in the store (``schedules``). Whoever sends the digest moves it on to
the next Monday in the same transaction as the digest's outbox row, guarded by the due
time it read, so a restart never sends it twice and of two replicas only one sends it.
A service that was down at the due time sends that week's digest once when it is back,
then waits for the next Monday after now: never a burst of old digests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from receiver.domain.delivery import Channel, Kind
from receiver.domain.digest import (
    compute_digest,
    digest_zone,
    next_due,
    previous_due,
    render_digest,
    week_start,
)
from receiver.service.loops import Poller
from receiver.service.rules import RulesHolder
from receiver.store.base import NewNotification, Store, UnitOfWork, until_committed

log = structlog.get_logger("receiver.service.digest")

SCHEDULE = "digest.weekly"
KIND = Kind.DIGEST
CHANNEL = Channel.DIGEST


class WeeklyDigest:
    """Sends the weekly digest to ``channels.digest`` once per due time."""

    def __init__(
        self,
        store: Store,
        rules: RulesHolder,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.clock = clock
        self.on_commit = on_commit
        self._next: datetime | None = None  # the stored due time last read

    async def send_due(self) -> int:
        """Send the digest if it is due; returns 1 if this call sent it, else 0.

        Until the due time last read, nothing is asked of the store.
        """
        now = self.clock()
        if self._next is not None and now < self._next:
            return 0
        cfg = self.rules.current
        zone = digest_zone(cfg)

        async def attempt() -> int:
            due = await self.store.schedule_next(SCHEDULE, next_due(now, zone))
            if now < due:
                self._next = due
                return 0
            # Of several missed weeks, only the latest is reported.
            week_end = max(due.astimezone(zone), previous_due(now, zone))
            incidents = await self.store.digest_incidents(week_start(week_end, zone))
            digest = compute_digest(incidents, cfg, week_end)
            following = next_due(now, zone)
            payload = {
                "channel": cfg.channels.digest,
                "text": render_digest(digest),
                "week_ending": week_end.isoformat(),
            }
            unit = UnitOfWork(
                outbox=[(None, NewNotification(CHANNEL, KIND, payload))],
                advance_schedule=(SCHEDULE, due, following),
            )
            # a Conflict: another replica sent it meanwhile, and the next read says when next
            await self.store.commit(unit, now)
            self._next = following
            log.info(
                "digest_queued",
                week_ending=payload["week_ending"],
                next_at=following.isoformat(),
                late_seconds=round((now - week_end).total_seconds()),
            )
            self.on_commit()
            return 1

        return await until_committed(attempt)


def digest_loop(
    store: Store,
    rules: RulesHolder,
    clock: Callable[[], datetime],
    on_commit: Callable[[], None] = lambda: None,
    poll_seconds: float = 1.0,
) -> Poller:
    """The loop that sends the weekly digest when due."""
    return Poller("digest", WeeklyDigest(store, rules, clock, on_commit).send_due, poll_seconds)
