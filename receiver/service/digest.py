"""Scheduled posts: the weekly digest and the daily standup, each sent when its stored due
time has come.

The due time lives in the store (``schedules``). Whoever sends a post moves it on to the
next due time in the same transaction as the post's outbox row, guarded by the due time it
read, so a restart never sends it twice and of two replicas only one sends it. A service
that was down at the due time sends the post once when it is back, then waits for the next
due time after now: never a burst of old posts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from receiver.config.models import RulesConfig
from receiver.domain.delivery import Channel, Kind
from receiver.domain.digest import (
    compute_digest,
    digest_zone,
    next_due,
    previous_due,
    render_digest,
    week_start,
)
from receiver.domain.standup import next_standup, previous_standup, render_standup
from receiver.service.loops import Poller
from receiver.service.rules import RulesHolder
from receiver.store.base import (
    NewNotification,
    Store,
    StoreUnavailable,
    UnitOfWork,
    until_committed,
)

log = structlog.get_logger("receiver.service.digest")

SCHEDULE = "digest.weekly"
STANDUP_SCHEDULE = "standup.daily"
# A standup missed by more than this (the receiver was down all day) is not posted late.
STANDUP_STALE = timedelta(hours=12)
KIND = Kind.DIGEST
CHANNEL = Channel.DIGEST


class ScheduledPost:
    """A post sent once per stored due time (the weekly digest, the daily standup).

    ``next_due(after, cfg)`` gives the first due time after a moment (None: not configured);
    ``build(cfg, due, now)`` the post's payload for a due time that has come (the latest of
    several missed: never a burst of old posts).
    """

    def __init__(
        self,
        name: str,
        kind: str,
        next_due: Callable[[datetime, RulesConfig], datetime | None],
        build: Callable[[RulesConfig, datetime, datetime], Awaitable[dict[str, Any]]],
        store: Store,
        rules: RulesHolder,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None] = lambda: None,
        stale_after: timedelta | None = None,
    ) -> None:
        self.name = name
        self.stale_after = stale_after  # a due time this old is skipped, not posted late
        self.kind = kind
        self.next_due = next_due
        self.build = build
        self.store = store
        self.rules = rules
        self.clock = clock
        self.on_commit = on_commit
        self._next: datetime | None = None  # the stored due time last read

    async def send_due(self) -> int:
        """Send the post if it is due; returns 1 if this call sent it, else 0.

        Until the due time last read, nothing is asked of the store.
        """
        now = self.clock()
        if self._next is not None and now < self._next:
            return 0
        cfg = self.rules.current
        following = self.next_due(now, cfg)
        if following is None:
            return 0

        async def attempt() -> int:
            due = await self.store.schedule_next(self.name, following)
            if now < due:
                self._next = due
                return 0
            # A due time the rules no longer give (the time or days changed, the post was
            # switched off and on again), or one gone stale, moves on without a post.
            valid = self.next_due(due - timedelta(microseconds=1), cfg) == due
            stale = self.stale_after is not None and now - due > self.stale_after
            outbox = []
            if valid and not stale:
                payload = await self.build(cfg, due, now)
                outbox.append((None, NewNotification(CHANNEL, self.kind, payload)))
            unit = UnitOfWork(outbox=outbox, advance_schedule=(self.name, due, following))
            # a Conflict: another replica sent it meanwhile, and the next read says when next
            await self.store.commit(unit, now)
            self._next = following
            log.info(
                "scheduled_post_queued" if outbox else "scheduled_post_skipped",
                post=self.name,
                due=due.isoformat(),
                next_at=following.isoformat(),
                late_seconds=round((now - due).total_seconds()),
            )
            self.on_commit()
            return len(outbox)

        return await until_committed(attempt)


def weekly_digest(
    store: Store,
    rules: RulesHolder,
    clock: Callable[[], datetime],
    on_commit: Callable[[], None] = lambda: None,
) -> ScheduledPost:
    """The weekly digest to ``channels.digest``, every Monday 09:00."""

    async def build(cfg: RulesConfig, due: datetime, now: datetime) -> dict[str, Any]:
        zone = digest_zone(cfg)
        # Of several missed weeks, only the latest is reported.
        week_end = max(due.astimezone(zone), previous_due(now, zone))
        incidents = await store.digest_incidents(week_start(week_end, zone))
        digest = compute_digest(incidents, cfg, week_end)
        return {
            "channel": cfg.channels.digest,
            "text": render_digest(digest),
            "week_ending": week_end.isoformat(),
        }

    def due_after(after: datetime, cfg: RulesConfig) -> datetime:
        return next_due(after, digest_zone(cfg))

    return ScheduledPost(SCHEDULE, KIND, due_after, build, store, rules, clock, on_commit)


def daily_standup(
    store: Store,
    rules: RulesHolder,
    clock: Callable[[], datetime],
    on_commit: Callable[[], None] = lambda: None,
) -> ScheduledPost:
    """The daily standup to ``channels.standup`` (with ``standup:`` in the rules)."""

    async def build(cfg: RulesConfig, due: datetime, now: datetime) -> dict[str, Any]:
        since = previous_standup(due, cfg)
        incidents = await store.digest_incidents(since or due - timedelta(days=1))
        return {
            "channel": cfg.channels.standup,
            "text": render_standup(incidents, cfg, now, since),
            "standup_at": due.isoformat(),
        }

    return ScheduledPost(
        STANDUP_SCHEDULE, Kind.STANDUP, next_standup, build, store, rules, clock, on_commit,
        stale_after=STANDUP_STALE,
    )  # fmt: skip


def digest_loop(
    store: Store,
    rules: RulesHolder,
    clock: Callable[[], datetime],
    on_commit: Callable[[], None] = lambda: None,
    poll_seconds: float = 1.0,
) -> Poller:
    """The loop that sends the weekly digest and the daily standup when due."""
    posts = [
        weekly_digest(store, rules, clock, on_commit),
        daily_standup(store, rules, clock, on_commit),
    ]

    async def step() -> int:
        sent = 0
        for post in posts:  # one failing never keeps the other from going out
            try:
                sent += await post.send_due()
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("scheduled_post_failed", post=post.name)
        return sent

    return Poller("digest", step, poll_seconds)
