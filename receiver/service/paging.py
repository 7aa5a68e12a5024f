"""Pages that get through: moving a page to the person's next channel when nobody
acknowledged it within ``page_retry`` (a stored retry timer) or when its channel refused it
for good (the worker's dead-lettered pages), over ``domain/fallback.py``.

Each move commits with the incident as read (version-checked), so an ack, a resolve or
another replica's move meanwhile makes it decide again on what is stored now: a person is
moved on once, and never once the incident is acknowledged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import structlog

from receiver.domain import fallback
from receiver.domain.delivery import OutboxItem
from receiver.domain.escalation import Timer, TimerKind
from receiver.domain.model import Status
from receiver.service.rendering import Context, apply_fired
from receiver.service.rules import RulesHolder
from receiver.store.base import Conflict, Store, UnitOfWork

log = structlog.get_logger("receiver.paging")
ATTEMPTS = 5  # reads and decisions again after a conflict, before leaving it to the lease


class PageFallback:
    """Moves pages on to the next channel of their people."""

    def __init__(
        self,
        store: Store,
        rules: RulesHolder,
        clock: Callable[[], datetime],
        context: Callable[[], Awaitable[Context]],
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.clock = clock
        self.context = context
        self.on_commit = on_commit

    async def retry(self, timer: Timer) -> None:
        """A retry timer: the pages of its step not acknowledged within ``page_retry`` on
        their channel go to the next one (those moved there lately, when they have waited)."""
        assert timer.id is not None and timer.incident_id is not None
        step, attempt = fallback.decode(timer.step)
        await self._move(timer.incident_id, step, attempt, None, None, timer)

    async def failed(self, items: Sequence[OutboxItem]) -> None:
        """Pages whose channel refused them for good: their people are paged on their next
        channel now, if the incident still waits for an ack in the trigger they belong to."""
        for item in items:
            page = item.payload
            if item.incident_id is None or not isinstance(page.get("person"), str):
                continue
            medium = str(page.get("medium") or "slack")
            why = f"{medium} failed: {str(page.get('error') or 'refused')[:200]}"
            step, attempt = int(page.get("step", 0)), int(page.get("attempt", 0)) + 1
            trigger = page.get("trigger")
            await self._move(item.incident_id, step, attempt, why, (page["person"], trigger))

    async def _move(
        self,
        incident_id: int,
        step: int,
        attempt: int,
        why: str | None,
        only: tuple[str, object] | None,
        timer: Timer | None = None,
    ) -> None:
        cfg, ctx = self.rules.current, await self.context()
        for _ in range(ATTEMPTS):
            now = self.clock()
            incident = await self.store.get_incident(incident_id)
            if incident is None:
                return
            if only is not None and only[1] not in (
                None,
                fallback.trigger_tag(incident.triggered_at),
            ):
                return  # a page of an earlier trigger: this one has pages of its own
            fired = [timer.id] if timer is not None and timer.id is not None else []
            if incident.status is not Status.TRIGGERED or (
                timer is not None and timer.trigger != incident.triggered_at
            ):  # acknowledged or resolved (its timers cancelled), or a timer of another trigger
                with contextlib.suppress(Conflict):
                    await self.store.commit(UnitOfWork(fired_timers=fired), now)
                return
            unit = UnitOfWork([incident], fired_timers=fired)
            moved = fallback.move_on(
                incident, cfg, await self.store.timeline(incident_id), now, step, attempt,
                why or fallback.no_ack_reason(cfg), only[0] if only else None,
                cfg.page_retry if timer is not None else None,
            )  # fmt: skip
            if only is not None and not moved.fired.pages:
                return  # moved on already
            if moved.again is not None:  # moved there lately: looked at once they have waited
                again = Timer(
                    TimerKind.PAGE_RETRY, fallback.code(step, attempt), moved.again,
                    incident.triggered_at,
                )  # fmt: skip
                unit.add_timers(incident_id, [again])
            alerts = (await self.store.incident_alerts([incident_id], 1)).get(incident_id)
            apply_fired(
                unit, incident, moved.fired, cfg, ctx, now, alerts[0] if alerts else None, now
            )
            try:
                await self.store.commit(unit, now)
            except Conflict:
                continue  # changed meanwhile (an ack, alerts joining, another replica): again
            if unit.outbox:
                self.on_commit()
            return
        log.warning("page_fallback_conflicts", incident_id=incident_id, step=step, attempt=attempt)
