"""Maintenance windows in the application: those in force at ingest (the rules file's and
the API's), an API window made or ended early, and an incident held by a window released
when it ends: paged then, if it is still open."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from receiver.config.models import RulesConfig
from receiver.domain.escalation import Timer
from receiver.domain.incidents import Reason
from receiver.domain.maintenance import Window, from_rules, released
from receiver.domain.model import Incident, Status
from receiver.pacing import Pacer
from receiver.service.rendering import Notice, fire_due_now
from receiver.service.units import collect
from receiver.store.base import Conflict, Store, UnitOfWork, until_committed

if TYPE_CHECKING:  # the service makes its Maintenance, which acts through it
    from receiver.service.incidents import IncidentService


class NoSuchWindow(Exception):
    """No API maintenance window with that id."""


async def windows_at(store: Store, cfg: RulesConfig, now: datetime) -> list[Window]:
    """The windows that may apply now or later: the rules file's, and the API's not over."""
    return [*from_rules(cfg), *await store.maintenance_windows(now)]


class Maintenance:
    """API windows, and releasing what a window held."""

    def __init__(self, service: IncidentService) -> None:
        self.service = service
        self.store = service.store

    async def add(
        self, matchers: Sequence[str], starts_at: datetime, ends_at: datetime, reason: str, by: str
    ) -> int:
        """Store a window made through the API (checked by the caller); its id."""
        now = self.service.clock()
        return await self.store.add_maintenance(matchers, starts_at, ends_at, reason, by, now)

    async def windows(self, now: datetime) -> list[Window]:
        """Every window not over at ``now``: the rules file's, and the API's."""
        return await windows_at(self.store, self.service.rules.current, now)

    async def end(self, window_id: int, by: str) -> tuple[Reason, Window]:
        """End an API window now; the incidents it holds are paged in the same commit."""
        cfg = self.service.rules.current

        async def attempt() -> tuple[Reason, Window, list[tuple[str, int]] | None]:
            now = self.service.clock()
            window = await self.store.get_maintenance(window_id)
            if window is None:
                raise NoSuchWindow(window_id)
            if window.end <= now:
                return Reason.ALREADY, window, None
            unit = UnitOfWork(end_window=(window_id, now, by))
            held = await self.store.held_by(window.name)
            paged = await self.release_into(unit, held, cfg, now, by)
            await self.store.commit(unit, now)
            return Reason.APPLIED, window, paged

        reason, window, paged = await until_committed(attempt)
        if paged is not None:
            self.count(paged)
            self.service.on_commit()
        return reason, window

    async def release(self, timer: Timer, incident: Incident, cfg: RulesConfig) -> None:
        """A window's end came for an incident it holds: page it now if still open (and
        still held, by this trigger's window: an ack, a resolve or an early end may have
        come first)."""
        assert timer.id is not None
        now = self.service.clock()
        unit = UnitOfWork(fired_timers=[timer.id])
        paged: list[tuple[str, int]] = []
        still = (
            incident.status is Status.TRIGGERED
            and incident.maintenance is not None
            and timer.trigger >= incident.triggered_at
        )
        if still:
            paged = await self.release_into(unit, [incident], cfg, now, None)
        try:
            await self.store.commit(unit, now)
        except Conflict:
            return  # changed meanwhile (an ack, another replica): decided there
        self.count(paged)
        if unit.outbox:
            self.service.on_commit()

    async def release_into(
        self,
        unit: UnitOfWork,
        incidents: Sequence[Incident],
        cfg: RulesConfig,
        now: datetime,
        by: str | None = None,
    ) -> list[tuple[str, int]]:
        """Put the releases of held incidents into a unit: the note, the new timers, and
        the first step's pages at once."""
        service, ctx = self.service, await self.service.context()
        ids = [i.id for i in incidents if i.id is not None and i.status is not Status.RESOLVED]
        briefs = {
            owner: alerts[0]
            for owner, alerts in (await self.store.incident_alerts(ids, 1)).items()
            if alerts
        }
        for incident in incidents:
            if incident.id not in ids:
                continue
            change = released(incident, now, by)
            collect(unit, change.incident, change, cfg, {})
            notice = Notice(change.incident, change, len(unit.events))
            await service.render_notice(unit, notice, cfg, ctx)
        return await fire_due_now(unit, cfg, ctx, now, Pacer(), briefs)

    def count(self, paged: Sequence[tuple[str, int]]) -> None:
        """Count the escalation steps a release paged."""
        for (severity, step), count in Counter(paged).items():
            self.service.metrics.escalations.labels(severity, str(step)).inc(count)
