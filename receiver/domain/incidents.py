"""Incident decisions: pure functions from stored state plus new input to the changes to store.

Alerts are identified by Alertmanager's fingerprint, and one firing *instance* of an alert by
(fingerprint, startsAt). Whatever has been recorded already is a duplicate: a retried
webhook, the second Alertmanager of an HA pair or a repeat notification changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

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


@dataclass(frozen=True)
class Change:
    """Everything to write for one incident in one transaction: the incident as the change
    leaves it, and the alerts, timeline entries and notifications the change makes."""

    incident: Incident
    is_new: bool = False
    alerts: tuple[AlertRecord, ...] = ()
    events: tuple[Event, ...] = ()
    notifications: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchDecision:
    """The outcome of one group of alerts sharing an incident key."""

    changes: tuple[Change, ...] = ()
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
    changes: list[Change] = []
    firing = firing_total - len(resolved)
    # What becomes of ``latest``: its fields changed, alerts, events and notifications.
    changed: dict[str, Any] = {}
    alerts: list[AlertRecord] = list(resolved)
    events: list[Event] = []
    notifications: list[str] = []
    if latest is not None and resolved:
        events.append(
            Event("alerts_resolved", now, {"count": len(resolved), "fingerprints": _fps(resolved)})
        )
    if fresh:
        records = [_record(a, r, now) for a, r in fresh]
        severity = _most_severe([r.severity for _, r in fresh], policy)
        window_open = (
            latest is not None
            and latest.resolved_at is not None
            and now - latest.resolved_at <= policy.reopen_window
        )
        if latest is not None and (latest.is_open or window_open):
            if not latest.is_open:
                changed.update(
                    status=Status.TRIGGERED,
                    triggered_at=now,
                    first_starts_at=min(a.starts_at for a, _ in fresh),
                    acknowledged_at=None,
                    acknowledged_by=None,
                    resolved_at=None,
                    resolved_by=None,
                    mitigated_at=None,  # a new cycle: its phases start again
                    mitigated_by=None,
                    reported_at=None,
                    reported_by=None,
                )
                events.append(Event("reopened", now, {"alerts": len(records)}))
                notifications.append(Kind.REOPENED)
            else:
                events.append(
                    Event(
                        "alerts_joined", now, {"count": len(records), "fingerprints": _fps(records)}
                    )
                )
                notifications.append(Kind.ALERTS_JOINED)
            alerts.extend(records)
            firing += len(records)
            if policy.rank(severity) < policy.rank(latest.severity):
                events.append(
                    Event("severity_raised", now, {"from": latest.severity, "to": severity})
                )
                notifications.append(Kind.SEVERITY_RAISED)
                changed["severity"] = severity
        else:
            inc = replace(_new_incident(fresh, now, policy), firing_alerts=len(records))
            opened = Event("opened", now, {"severity": inc.severity, "alerts": len(records)})
            changes.append(Change(inc, True, tuple(records), (opened,), (Kind.OPENED,)))
    if latest is not None and (resolved or changed or events):
        is_open = changed.get("status", latest.status) is not Status.RESOLVED
        if resolved and is_open and firing <= 0:
            changed.update(status=Status.RESOLVED, resolved_at=now)
            events.append(Event("resolved", now, {"reason": "all alerts resolved"}))
            notifications.append(Kind.RESOLVED)
        incident = replace(latest, firing_alerts=firing, **changed)
        change = Change(incident, False, tuple(alerts), tuple(events), tuple(notifications))
        changes.insert(0, change)  # untouched when fresh alerts went to a new one
    return BatchDecision(tuple(changes), duplicates, unknown)


def decide_ack(incident: Incident, by: str, now: datetime) -> tuple[Reason, Change | None]:
    """Acknowledge a triggered incident; a second ack changes nothing."""
    if incident.status is Status.ACKNOWLEDGED:
        return Reason.ALREADY, None
    if incident.status is Status.RESOLVED:
        return Reason.CONFLICT, None
    change = Change(
        replace(incident, status=Status.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by),
        events=(Event("acknowledged", now, {"by": by}),),
        notifications=(Kind.ACKNOWLEDGED,),
    )
    return Reason.APPLIED, change


def decide_mitigate(incident: Incident, by: str, now: datetime) -> tuple[Reason, Change | None]:
    """Mark an open incident mitigated (its impact stopped); one still triggered is
    acknowledged at the same moment (whoever mitigated it is on it). A repeat changes
    nothing."""
    if incident.mitigated_at is not None:
        return Reason.ALREADY, None
    if incident.status is Status.RESOLVED:
        return Reason.CONFLICT, None
    changed: dict[str, Any] = {"mitigated_at": now, "mitigated_by": by}
    events = [Event("mitigated", now, {"by": by})]
    if incident.status is Status.TRIGGERED:
        changed.update(status=Status.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by)
        events.insert(0, Event("acknowledged", now, {"by": by, "with": "mitigated"}))
    change = Change(
        replace(incident, **changed), events=tuple(events), notifications=(Kind.MITIGATED,)
    )
    return Reason.APPLIED, change


def decide_report(incident: Incident, by: str, now: datetime) -> tuple[Reason, Change | None]:
    """Mark a resolved incident reported (its postmortem written); only once resolved, and
    a repeat changes nothing."""
    if incident.reported_at is not None:
        return Reason.ALREADY, None
    if incident.status is not Status.RESOLVED:
        return Reason.CONFLICT, None
    change = Change(
        replace(incident, reported_at=now, reported_by=by),
        events=(Event("reported", now, {"by": by}),),
        notifications=(Kind.REPORTED,),
    )
    return Reason.APPLIED, change


def decide_resolve(incident: Incident, by: str, now: datetime) -> tuple[Reason, Change | None]:
    """Resolve an incident by hand; resolving a resolved incident changes nothing."""
    if incident.status is Status.RESOLVED:
        return Reason.ALREADY, None
    change = Change(
        replace(incident, status=Status.RESOLVED, resolved_at=now, resolved_by=by),
        events=(Event("resolved", now, {"by": by, "reason": "resolved by hand"}),),
        notifications=(Kind.RESOLVED,),
    )
    return Reason.APPLIED, change


def decide_triage(
    incident: Incident,
    by: str,
    now: datetime,
    *,
    severity: str | None = None,
    category: str | None = None,
    team: str | None = None,
    assignee: str | None = None,
) -> tuple[Reason, Change | None]:
    """Triage a beta-tester report: its severity, category (and so team) and assignee as
    someone decided. Only reports are triaged (an alert's rule decides for it), and not
    once resolved; the same values again change nothing."""
    if incident.source != "report" or incident.status is Status.RESOLVED:
        return Reason.CONFLICT, None
    data: dict[str, Any] = {"by": by}
    changed: dict[str, Any] = {}
    if severity is not None and severity != incident.severity:
        data["severity"] = [incident.severity, severity]
        changed["severity"] = severity
    if category is not None and category != incident.category:
        data["category"] = [incident.category, category]
        changed.update(category=category, team=team or incident.team)
    retriaged = bool(changed)
    if assignee is not None and assignee != incident.assignee:
        data["assignee"] = assignee
        changed["assignee"] = assignee  # the same field a reassignment sets
    if not changed:
        return Reason.ALREADY, None
    if retriaged:
        changed["triggered_at"] = now  # the new severity's and team's policy from now on
    change = Change(
        replace(incident, **changed),
        events=(Event("triaged", now, data),),
        notifications=(Kind.TRIAGED,),
    )
    return Reason.APPLIED, change


def decide_link(
    incident: Incident, target: Incident, linked_to: int | None, by: str, now: datetime
) -> tuple[Reason, Change | None]:
    """Link a beta-tester report into another incident (``linked_to``: where it is linked
    now): it is resolved with that one, and its own escalation stops (the other's handling
    covers it). Only open reports link, only into an open incident other than themselves."""
    assert incident.id is not None and target.id is not None
    if incident.source != "report" or incident.id == target.id:
        return Reason.CONFLICT, None
    if incident.status is Status.RESOLVED or target.status is Status.RESOLVED:
        return Reason.CONFLICT, None
    if linked_to == target.id:
        return Reason.ALREADY, None
    linked = Event("linked", now, {"to": target.id, "by": by})
    return Reason.APPLIED, Change(incident, events=(linked,), notifications=(Kind.LINKED,))


def decide_resolved_with(incident: Incident, target_id: int, now: datetime) -> Change:
    """A linked incident resolved because the one it is linked into did."""
    reason = f"the incident it is linked into (#{target_id}) resolved"
    resolved = Event("resolved", now, {"reason": reason, "with": target_id})
    return Change(
        replace(incident, status=Status.RESOLVED, resolved_at=now, resolved_by=None),
        events=(resolved,),
        notifications=(Kind.RESOLVED,),
    )
