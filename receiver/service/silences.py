"""Reconciling open incidents with Alertmanager (RECEIVER_ALERTMANAGER_URL): alerts
silenced there pause the incident's paging and escalation until the silence ends or is
lifted; alerts no Alertmanager holds any more (one resolved under a silence is never sent
as resolved) are resolved once gone for the grace period. An Alertmanager that does not
answer changes nothing; with none answering, nothing is done at all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from receiver.config.models import RulesConfig
from receiver.domain import heartbeats
from receiver.domain.model import Alert, AlertRecord, AlertStatus, Event, Incident, Status
from receiver.domain.silences import Held, gone, held_by_silence, merge, silence_of, silenced
from receiver.domain.timeline import zone_of
from receiver.intake.alertmanager import AlertmanagerClient
from receiver.service.rendering import Notice
from receiver.service.units import collect
from receiver.store.base import Conflict, UnitOfWork

if TYPE_CHECKING:
    from receiver.service.incidents import IncidentService

log = structlog.get_logger(__name__)


class Reconciler:
    """One look at the Alertmanagers per step, on every replica (each change is decided on
    fresh state and committed once; a replica deciding the same meanwhile conflicts)."""

    def __init__(
        self, service: IncidentService, client: AlertmanagerClient, grace_seconds: float
    ) -> None:
        self.service = service
        self.client = client
        self.grace = timedelta(seconds=grace_seconds)
        self.missing: dict[str, datetime] = {}  # fingerprint -> first found gone

    async def step(self) -> int:
        views, errors = await self.client.views()
        for error in errors:
            log.warning("alertmanager_unreachable", error=error)
        if not views:
            return 0
        held = merge(views)
        service, now = self.service, self.service.clock()
        incidents = [
            i for i in await service.store.digest_incidents(now)
            if i.is_open and i.source == "alert" and i.id is not None
            and not heartbeats.is_silence(i.rule)  # the receiver's own: Alertmanager never has it
        ]  # fmt: skip
        records = await service.store.incident_alerts([i.id for i in incidents if i.id])
        resolving: list[tuple[Incident, list[AlertRecord]]] = []
        holding: list[tuple[Incident, str]] = []
        releasing: list[Incident] = []
        still_missing: set[str] = set()
        for incident in incidents:
            firing = [
                a for a in records.get(incident.id or 0, []) if a.status is AlertStatus.FIRING
            ]
            fps = [a.fingerprint for a in firing]
            lost = set(gone(fps, held))
            still_missing |= lost
            due = [a for a in firing if a.fingerprint in lost and self._past_grace(a, now)]
            if due:
                resolving.append((incident, due))
            self._silence(incident, fps, held, now, holding, releasing)
        self.missing = {fp: at for fp, at in self.missing.items() if fp in still_missing}
        done = await self._resolve(resolving, now)
        done += await self._hold_and_release(holding, releasing, held, now)
        return done

    def _past_grace(self, alert: AlertRecord, now: datetime) -> bool:
        first = self.missing.setdefault(alert.fingerprint, now)
        return now - first >= self.grace

    @staticmethod
    def _silence(
        incident: Incident,
        fps: Sequence[str],
        held: Held,
        now: datetime,
        holding: list[tuple[Incident, str]],
        releasing: list[Incident],
    ) -> None:
        """Whether the incident is to be held by a silence, or released from one."""
        silence = silence_of(fps, held)
        current = held_by_silence(incident)
        if silence is not None and silence.ends_at > now:
            free = incident.maintenance is None and incident.status is Status.TRIGGERED
            if free or (current is not None and current != silence.id):
                holding.append((incident, silence.id))
        elif current is not None:
            releasing.append(incident)

    async def _resolve(
        self, resolving: Sequence[tuple[Incident, list[AlertRecord]]], now: datetime
    ) -> int:
        """Resolve the alerts gone from Alertmanager, as if it had sent their resolve."""
        if not resolving:
            return 0
        alerts = [
            Alert(
                r.fingerprint,
                AlertStatus.RESOLVED,
                r.labels,
                r.annotations,
                r.starts_at,
                now,
                r.generator_url,
                incident.alertmanager_url,
            )
            for incident, gone_alerts in resolving
            for r in gone_alerts
        ]
        await self.service.ingest(alerts)
        unit = UnitOfWork()
        for incident, gone_alerts in resolving:
            assert incident.id is not None
            fps = [r.fingerprint for r in gone_alerts][:20]
            data = {"count": len(gone_alerts), "fingerprints": fps}
            unit.events.append((incident.id, Event("alerts_gone", now, data)))
        await self.service.store.commit(unit, now)
        for incident, gone_alerts in resolving:
            log.info("alerts_gone", incident_id=incident.id, count=len(gone_alerts))
        return len(alerts)

    async def _hold_and_release(
        self,
        holding: Sequence[tuple[Incident, str]],
        releasing: Sequence[Incident],
        held: Held,
        now: datetime,
    ) -> int:
        """Hold incidents by their silence, release those whose silence is over; each
        incident in a commit of its own, which conflicts (and the next look decides again)
        if the incident changed since this step read it."""
        service = self.service
        cfg: RulesConfig = service.rules.current
        ctx = await service.context()
        count = 0
        for incident, silence_id in holding:
            change = silenced(incident, held.silences[silence_id], now, zone_of(incident, cfg).key)
            unit = UnitOfWork()
            collect(unit, change.incident, change, cfg, {})
            await service.render_notice(unit, Notice(change.incident, change, len(unit.events)),
                                        cfg, ctx)  # fmt: skip
            count += await self._commit(unit, now)
        for incident in releasing:
            unit = UnitOfWork()
            paged = await service.maintenance.release_into(unit, [incident], cfg, now)
            if await self._commit(unit, now):
                service.maintenance.count(paged)
                count += 1
        return count

    async def _commit(self, unit: UnitOfWork, now: datetime) -> int:
        try:
            await self.service.store.commit(unit, now)
        except Conflict:
            return 0  # another replica, or an ack, came first
        self.service.on_commit()
        return 1
