"""The application layer: route, decide, store in one transaction, then count and wake."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from receiver.config.holder import RulesHolder
from receiver.config.models import RulesConfig
from receiver.domain.incidents import (
    BatchDecision,
    Change,
    Policy,
    Reason,
    decide_ack,
    decide_batch,
    decide_resolve,
)
from receiver.domain.model import Alert, AlertStatus, Incident, Route, Status
from receiver.domain.notifications import CHANNELS_BY_KIND, notification_payload
from receiver.domain.routing import route
from receiver.metrics import Metrics
from receiver.store.base import NewNotification, Store, Transaction


@dataclass
class IngestResult:
    """What one webhook did."""

    incidents: list[int] = field(default_factory=list)
    opened: int = 0
    duplicates: int = 0
    unknown_resolved: int = 0


class NotFound(Exception):
    """No incident with that id."""


def policy_of(cfg: RulesConfig) -> Policy:
    """The decision policy of a rules file; unknown severities rank below every known one."""
    order = {name: i for i, name in enumerate(cfg.severities)}
    return Policy(cfg.jira.reopen_window, lambda sev: order.get(sev, len(order)))


class IncidentService:
    """Turns alerts and manual actions into stored incidents and outbox rows."""

    def __init__(
        self,
        store: Store,
        rules: RulesHolder,
        metrics: Metrics,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.clock = clock
        self.on_commit = on_commit

    async def ingest(self, alerts: Sequence[Alert]) -> IngestResult:
        """Apply one webhook's alerts atomically."""
        cfg = self.rules.current
        policy = policy_of(cfg)
        now = self.clock()
        groups: dict[str, list[tuple[Alert, Route]]] = defaultdict(list)
        for alert in alerts:
            r = route(cfg, alert.labels)
            groups[r.key].append((alert, r))
        decisions: list[BatchDecision] = []
        async with self.store.transaction() as tx:
            for key, batch in groups.items():
                latest = await tx.latest_incident(key)
                known, firing = {}, 0
                if latest is not None:
                    assert latest.id is not None
                    known = await tx.alerts_by_fingerprint(
                        latest.id, [a.fingerprint for a, _ in batch]
                    )
                    firing = await tx.firing_count(latest.id)
                decision = decide_batch(latest, known, firing, batch, now, policy)
                for change in decision.changes:
                    await self._apply(tx, change, cfg, now)
                decisions.append(decision)
        result = IngestResult()
        for alert in alerts:
            self.metrics.alerts_received.labels(alert.status.value).inc()
        for decision in decisions:
            result.duplicates += decision.duplicates
            result.unknown_resolved += decision.unknown_resolved
            for change in decision.changes:
                assert change.incident.id is not None
                result.incidents.append(change.incident.id)
                if change.is_new:
                    result.opened += 1
                    self.metrics.incidents_opened.labels(
                        change.incident.severity, change.incident.category
                    ).inc()
        self.metrics.duplicates_suppressed.inc(result.duplicates)
        self.metrics.unknown_resolved.inc(result.unknown_resolved)
        self.on_commit()
        return result

    async def _apply(
        self, tx: Transaction, change: Change, cfg: RulesConfig, now: datetime
    ) -> None:
        incident_id = await tx.save_incident(change.incident)
        change.incident.id = incident_id
        if change.alerts:
            await tx.save_alerts(incident_id, change.alerts)
        if change.events:
            await tx.add_events(incident_id, change.events)
        rows = [
            NewNotification(
                channel, kind, notification_payload(kind, change.incident, change.events, cfg)
            )
            for kind in change.notifications
            for channel in CHANNELS_BY_KIND.get(kind, ())
        ]
        if rows:
            await tx.enqueue(incident_id, rows, now)

    async def _manual(
        self,
        incident_id: int,
        by: str,
        decide: Callable[[Incident, str, datetime], tuple[Reason, Change | None]],
    ) -> tuple[Reason, Incident]:
        cfg = self.rules.current
        now = self.clock()
        async with self.store.transaction() as tx:
            incident = await tx.incident(incident_id)
            if incident is None:
                raise NotFound(incident_id)
            reason, change = decide(incident, by, now)
            if change is not None:
                await self._apply(tx, change, cfg, now)
                incident = change.incident
        if change is not None:
            self.on_commit()
        return reason, incident

    async def acknowledge(self, incident_id: int, by: str) -> tuple[Reason, Incident]:
        """Acknowledge by hand; observes alert-to-ack once, on the first ack."""
        reason, incident = await self._manual(incident_id, by, decide_ack)
        if reason is Reason.APPLIED and incident.acknowledged_at is not None:
            latency = (incident.acknowledged_at - incident.first_starts_at).total_seconds()
            self.metrics.alert_to_ack.labels(incident.severity, incident.category).observe(
                max(0.0, latency)
            )
        return reason, incident

    async def resolve(self, incident_id: int, by: str) -> tuple[Reason, Incident]:
        """Resolve by hand."""
        return await self._manual(incident_id, by, decide_resolve)

    async def refresh_gauges(self) -> None:
        """Recompute the gauges that describe stored state."""
        cfg = self.rules.current
        self.metrics.set_open(await self.store.open_counts(), list(cfg.severities))
        pending, oldest = await self.store.outbox_stats(self.clock())
        self.metrics.outbox_pending.set(pending)
        self.metrics.outbox_oldest.set(oldest)


__all__ = ["AlertStatus", "IncidentService", "IngestResult", "NotFound", "Status"]
