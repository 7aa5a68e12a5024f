"""JSON shapes of incidents, alerts, timeline entries and deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain.model import AlertRecord, Event, Incident, Status
from receiver.domain.phases import ahead
from receiver.store.base import Delivery


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert_view(alert: AlertRecord) -> dict[str, Any]:
    """One alert of an incident."""
    return {
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "severity": alert.severity,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": iso(alert.starts_at),
        "ends_at": iso(alert.ends_at),
        "generator_url": alert.generator_url,
    }


def event_view(event: Event) -> dict[str, Any]:
    """One timeline entry."""
    return {**event.data, "at": iso(event.at), "event": event.event}


def incident_view(
    incident: Incident,
    alerts: list[AlertRecord],
    alerts_total: int | None = None,
    jira_base: str | None = None,
    *,
    cfg: RulesConfig,
) -> dict[str, Any]:
    """An incident with its alerts; ``jira_url`` links the issue when JIRA is configured;
    ``phase_deadlines`` those of the phases still ahead under the rules in force."""
    jira_url = (
        f"{jira_base.rstrip('/')}/browse/{incident.jira_key}"
        if jira_base and incident.jira_key
        else None
    )
    return {
        "id": incident.id,
        "key": incident.key,
        "rule": incident.rule,
        "source": incident.source,
        "status": incident.status.value,
        "severity": incident.severity,
        "category": incident.category,
        "team": incident.team,
        "summary": incident.summary,
        "group_labels": incident.group_labels,
        "alerts": [alert_view(a) for a in alerts],
        "alerts_total": len(alerts) if alerts_total is None else alerts_total,
        "jira_key": incident.jira_key,
        "jira_url": jira_url,
        "alertmanager_url": incident.alertmanager_url or None,
        "opened_at": iso(incident.opened_at),
        "triggered_at": iso(incident.triggered_at),
        "first_alert_at": iso(incident.first_starts_at),
        "acknowledged_at": iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "mitigated_at": iso(incident.mitigated_at),
        "mitigated_by": incident.mitigated_by,
        "resolved_at": iso(incident.resolved_at),
        "resolved_by": incident.resolved_by,
        "reported_at": iso(incident.reported_at),
        "reported_by": incident.reported_by,
        "phase_deadlines": {p: iso(at) for p, at in ahead(incident, cfg).items()},
        "maintenance": incident.maintenance,
        "assignee": incident.assignee,
    }


# Events after which an incident's pages are planned anew (a hold before them is over).
TRIGGERS = frozenset(
    {"opened", "reopened", "severity_raised", "triaged", "maintenance_over", "unacknowledged"}
)


def held(incident: Incident, timeline: Sequence[Event], now: datetime) -> str | None:
    """Until when the incident's pages are held for business hours, while they still are
    (the latest hold on its timeline, not yet past, the incident not yet acknowledged)."""
    if incident.status is not Status.TRIGGERED:
        return None
    for event in reversed(timeline):  # the latest trigger's hold, if it had one
        if event.event == "pages_held":
            until = datetime.fromisoformat(str(event.data["until"]))
            return until.isoformat() if until > now else None
        if event.event in TRIGGERS:
            return None
    return None


def delivery_view(d: Delivery) -> dict[str, Any]:
    """One outbox row."""
    return {
        "id": d.id,
        "incident_id": d.incident_id,
        "channel": d.channel,
        "kind": d.kind,
        "status": d.status,
        "attempts": d.attempts,
        "created_at": iso(d.created_at),
        "next_attempt_at": iso(d.next_attempt_at),
        "last_error": d.last_error,
        "done_at": iso(d.done_at),
        **({"page": d.page} if d.page is not None else {}),
    }


def pages_view(deliveries: Sequence[Delivery], acknowledged_by: str | None) -> list[dict[str, Any]]:
    """Who was paged, per trigger (open, reopen, raise), step and person, oldest first:
    each attempt on each channel, whether one reached them (and which, when), and whether
    they acknowledged."""
    by: dict[tuple[Any, Any, Any], list[Delivery]] = {}
    for d in sorted(deliveries, key=lambda d: d.id):
        if d.page is not None:
            key = (d.page.get("trigger"), d.page.get("step"), d.page.get("person"))
            by.setdefault(key, []).append(d)
    out = []
    for (trigger, step, person), rows in by.items():
        attempts = [
            {
                "channel": d.page["medium"] if d.page else d.channel,
                "attempt": d.page["attempt"] if d.page else 0,
                "status": d.status,
                "queued_at": iso(d.created_at),
                "sent_at": iso(d.done_at) if d.status == "sent" else None,
                "error": d.last_error,
                "delivery": d.id,
            }
            for d in rows
        ]
        reached = next((a for a in attempts if a["status"] == "sent"), None)
        out.append({
            "person": person,
            "step": step,
            "trigger": trigger,
            "attempts": attempts,
            "reached_by": reached["channel"] if reached else None,
            "reached_at": reached["sent_at"] if reached else None,
            "acknowledged": acknowledged_by == person,
        })  # fmt: skip
    return out
