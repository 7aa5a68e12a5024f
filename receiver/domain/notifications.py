"""Which channels hear about which incident event, and what they are told."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain.escalation import Page
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.timeline import stamp, zone_of

# JIRA follows everything; the alerts channel hears state changes, not every join.
CHANNELS_BY_KIND: dict[str, tuple[str, ...]] = {
    "incident.opened": ("jira", "slack"),
    "incident.alerts_joined": ("jira",),
    "incident.severity_raised": ("jira", "slack"),
    "incident.reopened": ("jira", "slack"),
    "incident.acknowledged": ("jira", "slack"),
    "incident.resolved": ("jira", "slack"),
    "incident.escalated": ("jira",),  # the pages themselves go to the pager channel
}


# Kinds whose notifications are held back briefly and folded together: a storm of joins
# becomes one JIRA comment a minute, not one per webhook.
COALESCED_KINDS = frozenset({"incident.alerts_joined"})
MAX_EVENTS_PER_PAYLOAD = 20
# Event data the timeline keeps but notifications leave out: no notifier shows it, and a
# waiting row is rewritten with all its events on every fold, once per webhook in a storm.
TIMELINE_ONLY = frozenset({"fingerprints"})


def merge_payloads(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """Fold a newer notification into a waiting one: the latest snapshot, all events
    (the oldest dropped past a cap, but counted).

    Either side may itself be a fold, so folding in any grouping gives the same payload.
    """
    events = [*older.get("events", []), *newer.get("events", [])]
    dropped = max(0, len(events) - MAX_EVENTS_PER_PAYLOAD)
    return {
        **newer,
        "events": events[dropped:],
        "events_dropped": older.get("events_dropped", 0) + newer.get("events_dropped", 0) + dropped,
        "coalesced": older.get("coalesced", 1) + newer.get("coalesced", 1),
    }


def snapshot(incident: Incident, cfg: RulesConfig) -> dict[str, Any]:
    """What a notifier needs to know about an incident, frozen at the time of the event.

    The incident's id travels on the outbox row itself.
    """
    team = cfg.teams.get(incident.team)
    policy = cfg.severities.get(incident.severity)
    return {
        "key": incident.key,
        "rule": incident.rule,
        "severity": incident.severity,
        "category": incident.category,
        "team": incident.team,
        "status": incident.status.value,
        "summary": incident.summary,
        "group_labels": incident.group_labels,
        "jira_key": incident.jira_key,
        "jira_project": (team.jira_project if team else None) or cfg.jira.project,
        "jira_priority": policy.jira_priority if policy else None,
        "channel": cfg.channels.alerts,
        "team_channel": team.channel if team else None,
        "acknowledged_by": incident.acknowledged_by,
        "resolved_by": incident.resolved_by,
    }


def brief(incident: Incident, alert: AlertRecord | None, cfg: RulesConfig) -> dict[str, Any]:
    """What a person paged at 3 a.m. needs to act, fixed when the page was decided: what
    broke, since when and by when to respond (in the team's time zone), expected against
    actual, how many alerts, and where to look. Texts are raw; renderers escape them."""
    zone = zone_of(incident, cfg)
    policy = cfg.severities.get(incident.severity)
    notes = {**(alert.labels if alert else {}), **(alert.annotations if alert else {})}
    respond = incident.first_starts_at + policy.respond_within if policy else None
    return {
        "trigger": "reopened" if incident.triggered_at > incident.opened_at else "opened",
        "description": notes.get("description"),
        "since": stamp(incident.first_starts_at, zone, "%Y-%m-%d %H:%M"),
        "respond_by": stamp(respond, zone, "%Y-%m-%d %H:%M") if respond else None,
        "expected": notes.get("expected") or notes.get("threshold"),
        "actual": notes.get("actual") or notes.get("value"),
        "alerts": incident.firing_alerts,
        "runbook_url": notes.get("runbook_url"),
        "graph_url": alert.generator_url if alert else None,
        "alertmanager_url": incident.alertmanager_url or None,
    }


def page_payload(
    page: Page,
    incident: Incident,
    cfg: RulesConfig,
    due_at: datetime,
    alert: AlertRecord | None = None,
) -> dict[str, Any]:
    """What the pager needs to reach one person about an incident; ``due_at`` (when the
    step was due) is where its page latency is measured from, ``alert`` one of its alerts
    for the brief."""
    person = cfg.people.get(page.person)
    return {
        "due_at": due_at.isoformat(),
        "brief": brief(incident, alert, cfg),
        "person": page.person,
        "name": person.name if person else page.person,
        "slack_id": person.slack_id if person else None,
        "email": person.email if person else None,
        "target": page.target,
        "step": page.step,
        "incident": snapshot(incident, cfg),
    }


def notification_payload(
    kind: str, incident: Incident, events: list[Event], cfg: RulesConfig
) -> dict[str, Any]:
    """The outbox payload of one event (its events without TIMELINE_ONLY data)."""
    return {
        "kind": kind,
        "incident": snapshot(incident, cfg),
        "events": [
            {
                "event": e.event,
                "at": e.at.isoformat(),
                **{k: v for k, v in e.data.items() if k not in TIMELINE_ONLY},
            }
            for e in events
        ],
    }
