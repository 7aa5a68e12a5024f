"""Incident decisions: pure functions from stored state plus new input to the changes to store.

Alerts are identified by Alertmanager's fingerprint, and one firing *instance* of an alert by
(fingerprint, startsAt). Whatever has been recorded already is a duplicate: a retried
webhook, the second Alertmanager of an HA pair or a repeat notification changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from copy import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from receiver.domain.delivery import Kind
from receiver.domain.model import (
    Alert,
    AlertRecord,
    AlertStatus,
    Event,
    Incident,
    Route,
    Status,
)

FINGERPRINTS_IN_EVENT = 20


@dataclass(frozen=True)
class Policy:
    """What the decisions need from the rules file."""

    reopen_window: timedelta
    rank: Callable[[str], int]  # lower is more severe


@dataclass
class Change:
    """Everything to write for one incident in one transaction."""

    incident: Incident
    is_new: bool = False
    alerts: list[AlertRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)


@dataclass
class BatchDecision:
    """The outcome of one group of alerts sharing an incident key."""

    changes: list[Change] = field(default_factory=list)
    duplicates: int = 0
    unknown_resolved: int = 0


class Reason(enum.StrEnum):
    """Why a manual action did or did not change an incident."""

    APPLIED = "applied"
    ALREADY = "already"
    CONFLICT = "conflict"


def _summary(alert: Alert, route: Route) -> str:
    """The alert's summary (else the rule's, else the alert's name) and where it fires,
    without the label values the text already names ("order-api is down", not
    "order-api is down — order-api")."""
    text = (
        alert.annotations.get("summary")
        or route.summary
        or alert.labels.get("alertname")
        or route.rule
    )
    where = ", ".join(
        v for k, v in route.group_labels.items() if k != "alertname" and v and v not in text
    )
    return f"{text} — {where}" if where else text


def _record(alert: Alert, route: Route, now: datetime) -> AlertRecord:
    return AlertRecord(
        fingerprint=alert.fingerprint,
        status=AlertStatus.FIRING,
        severity=route.severity,
        labels=alert.labels,  # an alert's label sets are never changed, so shared
        annotations=alert.annotations,
        starts_at=alert.starts_at,
        ends_at=None,
        generator_url=alert.generator_url,
        first_seen=now,
        last_seen=now,
    )


def _fps(records: Sequence[AlertRecord]) -> list[str]:
    return [r.fingerprint for r in records[:FINGERPRINTS_IN_EVENT]]


def _most_severe(severities: Sequence[str], policy: Policy) -> str:
    return min(severities, key=policy.rank)


def _new_incident(fresh: list[tuple[Alert, Route]], now: datetime, policy: Policy) -> Incident:
    alert, route = fresh[0]
    return Incident(
        id=None,
        key=route.key,
        rule=route.rule,
        severity=_most_severe([r.severity for _, r in fresh], policy),
        category=route.category,
        team=route.team,
        status=Status.TRIGGERED,
        summary=_summary(alert, route),
        group_labels=dict(route.group_labels),
        opened_at=now,
        triggered_at=now,
        first_starts_at=min(a.starts_at for a, _ in fresh),
        alertmanager_url=alert.alertmanager_url,
    )


def _split(
    batch: Sequence[tuple[Alert, Route]], known: dict[str, AlertRecord], now: datetime
) -> tuple[list[AlertRecord], list[tuple[Alert, Route]], int, int]:
    """Sort a batch into resolved records, fresh firing instances, duplicates and unknowns."""
    resolved: list[AlertRecord] = []
    fresh: list[tuple[Alert, Route]] = []
    duplicates = unknown = 0
    for alert, route in {a.fingerprint: (a, r) for a, r in batch}.values():
        rec = known.get(alert.fingerprint)
        if alert.status is AlertStatus.RESOLVED:
            if rec is None:
                unknown += 1
            elif rec.status is AlertStatus.RESOLVED or alert.starts_at < rec.starts_at:
                duplicates += 1
            else:
                resolved.append(
                    replace(
                        rec,
                        status=AlertStatus.RESOLVED,
                        # A re-fire we only saw as a repeat still started this instance:
                        # a late copy of its firing must read as a duplicate.
                        starts_at=max(rec.starts_at, alert.starts_at),
                        ends_at=alert.ends_at or now,
                        last_seen=now,
                        annotations=dict(alert.annotations),
                    )
                )
        elif rec is not None and (
            rec.status is AlertStatus.FIRING or alert.starts_at <= rec.starts_at
        ):
            duplicates += 1  # already firing, or a late copy of an instance that has resolved
        else:
            fresh.append((alert, route))
    return resolved, fresh, duplicates, unknown


def decide_batch(
    latest: Incident | None,
    known: dict[str, AlertRecord],
    firing_total: int,
    batch: Sequence[tuple[Alert, Route]],
    now: datetime,
    policy: Policy,
) -> BatchDecision:
    """Decide what a group of alerts with one incident key does.

    ``latest`` is the newest incident for the key, ``known`` its stored alerts among the
    batch's fingerprints, ``firing_total`` how many of its alerts are firing.
    """
    resolved, fresh, duplicates, unknown = _split(batch, known, now)
    decision = BatchDecision(duplicates=duplicates, unknown_resolved=unknown)
    firing = firing_total - len(resolved)
    old: Change | None = None
    if latest is not None and (resolved or fresh):
        old = Change(incident=copy(latest))
        if resolved:
            old.alerts.extend(resolved)
            old.events.append(
                Event(
                    "alerts_resolved", now, {"count": len(resolved), "fingerprints": _fps(resolved)}
                )
            )
    if fresh:
        records = [_record(a, r, now) for a, r in fresh]
        severity = _most_severe([r.severity for _, r in fresh], policy)
        window_open = (
            latest is not None
            and latest.resolved_at is not None
            and now - latest.resolved_at <= policy.reopen_window
        )
        if old is not None and (old.incident.is_open or window_open):
            inc = old.incident
            if not inc.is_open:
                inc.status = Status.TRIGGERED
                inc.triggered_at = now
                inc.first_starts_at = min(a.starts_at for a, _ in fresh)
                inc.acknowledged_at = inc.acknowledged_by = None
                inc.resolved_at = inc.resolved_by = None
                old.events.append(Event("reopened", now, {"alerts": len(records)}))
                old.notifications.append(Kind.REOPENED)
            else:
                old.events.append(
                    Event(
                        "alerts_joined", now, {"count": len(records), "fingerprints": _fps(records)}
                    )
                )
                old.notifications.append(Kind.ALERTS_JOINED)
            old.alerts.extend(records)
            firing += len(records)
            if policy.rank(severity) < policy.rank(inc.severity):
                old.events.append(
                    Event("severity_raised", now, {"from": inc.severity, "to": severity})
                )
                old.notifications.append(Kind.SEVERITY_RAISED)
                inc.severity = severity
        else:
            inc = _new_incident(fresh, now, policy)
            opened = Change(incident=inc, is_new=True, alerts=records)
            opened.events.append(
                Event("opened", now, {"severity": inc.severity, "alerts": len(records)})
            )
            opened.notifications.append(Kind.OPENED)
            decision.changes.append(opened)
    if old is not None:
        if resolved and old.incident.is_open and firing <= 0:
            old.incident.status = Status.RESOLVED
            old.incident.resolved_at = now
            old.events.append(Event("resolved", now, {"reason": "all alerts resolved"}))
            old.notifications.append(Kind.RESOLVED)
        if old.alerts or old.events:  # untouched when fresh alerts went to a new incident
            decision.changes.insert(0, old)
    return decision


def decide_ack(incident: Incident, by: str, now: datetime) -> tuple[Reason, Change | None]:
    """Acknowledge a triggered incident; a second ack changes nothing."""
    if incident.status is Status.ACKNOWLEDGED:
        return Reason.ALREADY, None
    if incident.status is Status.RESOLVED:
        return Reason.CONFLICT, None
    change = Change(incident=replace(incident))
    change.incident.status = Status.ACKNOWLEDGED
    change.incident.acknowledged_at = now
    change.incident.acknowledged_by = by
    change.events.append(Event("acknowledged", now, {"by": by}))
    change.notifications.append(Kind.ACKNOWLEDGED)
    return Reason.APPLIED, change


def decide_resolve(incident: Incident, by: str, now: datetime) -> tuple[Reason, Change | None]:
    """Resolve an incident by hand; resolving a resolved incident changes nothing."""
    if incident.status is Status.RESOLVED:
        return Reason.ALREADY, None
    change = Change(incident=replace(incident))
    change.incident.status = Status.RESOLVED
    change.incident.resolved_at = now
    change.incident.resolved_by = by
    change.events.append(Event("resolved", now, {"by": by, "reason": "resolved by hand"}))
    change.notifications.append(Kind.RESOLVED)
    return Reason.APPLIED, change
