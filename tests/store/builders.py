"""Builders of incidents, alerts and notifications at fixed UTC times."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from receiver.domain.delivery import Outcome
from receiver.domain.escalation import Timer
from receiver.domain.model import AlertRecord, AlertStatus, Event, Incident, Status
from receiver.store import Store, UnitOfWork
from receiver.store.base import Committed, DeliveryOutcome, Effect, NewNotification, OutboxItem

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
JOINED = "incident.alerts_joined"


def at(seconds: float) -> datetime:
    """T0 plus some seconds."""
    return T0 + timedelta(seconds=seconds)


def new_incident(
    key: str,
    *,
    id: int | None = None,
    severity: str = "critical",
    status: Status = Status.TRIGGERED,
    opened: datetime = T0,
    firing: int = 1,
) -> Incident:
    """An incident not stored yet: without an id unless given one (reserved beforehand)."""
    acknowledged = status is Status.ACKNOWLEDGED
    resolved = status is Status.RESOLVED
    return Incident(
        id=id,
        key=key,
        rule="database",
        severity=severity,
        category="infra",
        team="platform",
        status=status,
        summary=f"{key} is down — zone ü",
        group_labels={"alertname": "DbDown", "service": key, "zone": "ü-1"},
        opened_at=opened,
        triggered_at=opened,
        first_starts_at=opened - timedelta(minutes=2),
        acknowledged_at=opened + timedelta(minutes=1) if acknowledged else None,
        acknowledged_by="alice" if acknowledged else None,
        resolved_at=opened + timedelta(minutes=5) if resolved else None,
        resolved_by="alertmanager" if resolved else None,
        firing_alerts=0 if resolved else firing,
    )


def stored_id(incident: Incident) -> int:
    """The id an incident carries (every incident in a unit of work has one)."""
    assert isinstance(incident.id, int), incident
    return incident.id


async def with_ids(store: Store, *incidents: Incident) -> list[Incident]:
    """The incidents, those without an id given one reserved from the store (in order)."""
    ids = iter(await store.reserve_incident_ids(sum(i.id is None for i in incidents)))
    return [i if i.id is not None else replace(i, id=next(ids)) for i in incidents]


async def reserved(store: Store, key: str, **options: Any) -> Incident:
    """A new incident (``new_incident`` with these options) under an id reserved for it."""
    [incident] = await with_ids(store, new_incident(key, **options))
    return incident


def inserting(
    *incidents: Incident,
    alerts: Iterable[tuple[int, AlertRecord]] = (),
    events: Iterable[tuple[int, Event]] = (),
    outbox: Iterable[tuple[int | None, NewNotification]] = (),
    timers: Iterable[tuple[int, Timer]] = (),
) -> UnitOfWork:
    """A unit inserting new incidents under the ids they carry, with these rows."""
    return UnitOfWork(
        incidents,
        new=[stored_id(i) for i in incidents],
        alerts=alerts,
        events=events,
        outbox=outbox,
        timers=timers,
    )


def as_committed(incident: Incident, committed: Committed) -> Incident:
    """The incident as a commit stored it: at the version the commit says it has now."""
    return replace(incident, version=committed.versions[stored_id(incident)])


async def read(store: Store, incident_id: int) -> Incident:
    """A stored incident (which must exist), as a decision reads it."""
    incident = await store.get_incident(incident_id)
    assert incident is not None, incident_id
    return incident


def alert_record(
    fingerprint: str,
    *,
    status: AlertStatus = AlertStatus.FIRING,
    severity: str = "critical",
    first_seen: datetime = T0,
    last_seen: datetime | None = None,
) -> AlertRecord:
    """A stored alert."""
    resolved = status is AlertStatus.RESOLVED
    return AlertRecord(
        fingerprint=fingerprint,
        status=status,
        severity=severity,
        labels={"alertname": "DbDown", "instance": fingerprint},
        annotations={"summary": f"{fingerprint} down"},
        starts_at=first_seen - timedelta(seconds=30),
        ends_at=first_seen + timedelta(seconds=90) if resolved else None,
        generator_url=f"http://prometheus.example:9090/graph?fp={fingerprint}",
        first_seen=first_seen,
        last_seen=last_seen or first_seen,
    )


def note(
    kind: str, payload: dict[str, Any] | None = None, *, channel: str = "jira", coalesce: float = 0
) -> NewNotification:
    """A notification to enqueue."""
    return NewNotification(channel, kind, payload or {"kind": kind}, coalesce)


def joined(key: str, firing: int, *fingerprints: str) -> NewNotification:
    """A coalescing alerts-joined notification on the jira channel."""
    payload = {
        "kind": JOINED,
        "incident": {"key": key, "firing_alerts": firing},
        "events": [{"event": "alert_joined", "fingerprint": fp} for fp in fingerprints],
    }
    return NewNotification("jira", JOINED, payload, 60.0)


async def seed(store: Store, *incidents: Incident, now: datetime = T0) -> list[Incident]:
    """Store new incidents, each under an id reserved for it (unless it carries one), and
    return them as stored."""
    stored = await with_ids(store, *incidents)
    committed = await store.commit(inserting(*stored), now)
    assert committed == Committed(dict.fromkeys(map(stored_id, stored), 0))
    return stored


async def enqueue(store: Store, now: datetime, *rows: tuple[int | None, NewNotification]) -> None:
    """Commit a unit holding only these outbox rows, as they are: the store folds them, not
    the unit (``UnitOfWork.notify`` would fold coalescing ones first)."""
    unit = UnitOfWork()
    unit.outbox.extend(rows)
    await store.commit(unit, now)


def stored_event(name: str, when: datetime, **data: Any) -> Event:
    """A timeline entry."""
    return Event(name, when, dict(data))


def view(items: list[OutboxItem]) -> list[tuple[int | None, str, str, int, datetime]]:
    """Claimed items as (incident, channel, kind, attempts, created), without id and payload."""
    return [(i.incident_id, i.channel, i.kind, i.attempts, i.created_at) for i in items]


async def record(store: Store, *effects: Effect, now: datetime = T0) -> None:
    """Record effects as a delivery does: with the outcome of a claimed row."""
    await store.commit(
        UnitOfWork(outbox=[(None, NewNotification("digest", "digest.weekly", {}))]), now
    )
    [item] = await store.claim_outbox(now, 1, 60, channel="digest")
    await store.claim_outbox(now, 0, 60, [DeliveryOutcome(item.id, Outcome.SENT, effects=effects)])


async def messages(store: Store, incident_id: int) -> list[tuple[str, str, str]]:
    """The Slack messages recorded about an incident, in the order they were recorded."""
    return list((await store.prior_effects([incident_id]))[incident_id].messages)


def posted(incident_id: int, channel_id: str, ts: str, purpose: str) -> Effect:
    return Effect("slack_message", incident_id, (channel_id, ts, purpose))
