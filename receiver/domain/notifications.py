"""Which channels hear about which incident event, and what they are told."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain.delivery import Channel, Kind
from receiver.domain.jira_render import joined_comment
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.timeline import stamp, zone_of

# JIRA follows everything; the alerts channel hears state changes, not every join.
CHANNELS_BY_KIND: dict[str, tuple[str, ...]] = {
    Kind.OPENED: (Channel.JIRA, Channel.SLACK),
    Kind.ALERTS_JOINED: (Channel.JIRA,),
    Kind.SEVERITY_RAISED: (Channel.JIRA, Channel.SLACK),
    Kind.REOPENED: (Channel.JIRA, Channel.SLACK),
    Kind.ACKNOWLEDGED: (Channel.JIRA, Channel.SLACK),
    Kind.RESOLVED: (Channel.JIRA, Channel.SLACK),
    Kind.MITIGATED: (Channel.JIRA, Channel.SLACK),
    Kind.REPORTED: (Channel.JIRA, Channel.SLACK),
    Kind.PHASE_OVERDUE: (Channel.JIRA, Channel.SLACK),
    Kind.MAINTENANCE_OVER: (Channel.JIRA, Channel.SLACK),
    Kind.SILENCED: (Channel.JIRA, Channel.SLACK),
    Kind.ESCALATED: (Channel.JIRA,),  # the pages themselves go to the pager channel
    Kind.TRIAGED: (Channel.JIRA,),
    Kind.LINKED: (Channel.JIRA,),
    Kind.NOTE: (Channel.JIRA,),
    Kind.REASSIGNED: (Channel.JIRA, Channel.SLACK),
    Kind.UNACKNOWLEDGED: (Channel.JIRA, Channel.SLACK),
}


# Kinds whose notifications are held back briefly and folded together: a storm of joins
# becomes one JIRA comment a minute, not one per webhook.
COALESCED_KINDS = frozenset({Kind.ALERTS_JOINED})
MAX_EVENTS_PER_PAYLOAD = 20
# Event data the timeline keeps but notifications leave out: no notifier shows it, and a
# waiting row is rewritten with all its events on every fold, once per webhook in a storm.
TIMELINE_ONLY = frozenset({"fingerprints"})


def merge_payloads(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """Fold a newer notification into a waiting one: the newer one's fields, all events
    (the oldest dropped past a cap, but counted), a JIRA comment on joins counting both.

    Either side may itself be a fold, so folding in any grouping gives the same payload.
    """
    events = [*older.get("events", []), *newer.get("events", [])]
    dropped = max(0, len(events) - MAX_EVENTS_PER_PAYLOAD)
    merged = {
        **newer,
        "events": events[dropped:],
        "events_dropped": older.get("events_dropped", 0) + newer.get("events_dropped", 0) + dropped,
        "coalesced": older.get("coalesced", 1) + newer.get("coalesced", 1),
    }
    if "joined" in older and "joined" in newer:  # a JIRA comment on joins counts them all
        merged["joined"] = int(older["joined"]) + int(newer["joined"])
        merged["comment"] = joined_comment(
            merged["joined"], merged["coalesced"], str(newer.get("last_at", ""))
        )
    return merged


def snapshot(incident: Incident) -> dict[str, Any]:
    """The incident as the renderers read it, at the time of the event."""
    return {
        "severity": incident.severity,
        "category": incident.category,
        "team": incident.team,
        "status": incident.status.value,
        "summary": incident.summary,
        "jira_key": incident.jira_key,
        "acknowledged_by": incident.acknowledged_by,
        "mitigated_by": incident.mitigated_by,
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
        "trigger": "reopened" if incident.reopened else "opened",
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


def notification_payload(kind: str, incident: Incident, events: Sequence[Event]) -> dict[str, Any]:
    """An event as the comment renderer reads it (its events without TIMELINE_ONLY data)."""
    return {
        "kind": kind,
        "incident": snapshot(incident),
        "events": [
            {
                "event": e.event,
                "at": e.at.isoformat(),
                **{k: v for k, v in e.data.items() if k not in TIMELINE_ONLY},
            }
            for e in events
        ],
    }
