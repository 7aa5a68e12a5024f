"""What a postmortem issue says: the incident's whole timeline and its response against
the targets, with headed sections left for the team to write; and, for an incident that
reopened and resolved again, the comment that brings it up to date with the last cycle.
Written in JIRA wiki markup, escaped like every other text the receiver writes to JIRA."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain.jira_render import (
    NOTE_MAX,
    SUMMARY_MAX,
    TEXT_MAX,
    cut,
    fit,
    label,
    one_line,
    project,
    summary,
    wiki,
)
from receiver.domain.model import Event, Incident
from receiver.domain.phase_render import wiki_table
from receiver.domain.timeline import describe, duration_text, measures, stamp, zone_of

POSTMORTEM_LABEL_PREFIX = "receiver-postmortem-"
POSTMORTEM_SECTIONS = ("Root cause", "Response evaluation", "Improvements", "Prevention")


def postmortem_label(installation: str, incident_id: int) -> str:
    """The label that identifies an incident's postmortem issue (see ``incident_label``)."""
    return f"{POSTMORTEM_LABEL_PREFIX}{installation}-{incident_id}"


def postmortem_description(
    incident: Incident,
    events: Sequence[Event],
    cfg: RulesConfig,
    issue: str,
) -> str:
    """A postmortem pre-filled with the timeline and the response against its targets,
    with headed sections left for the team to write; ``issue`` names the incident's issue
    (as written: a key, or a slot its notifier fills)."""
    zone = zone_of(incident, cfg)
    rows: list[tuple[datetime, str]] = [(incident.first_starts_at, "First alert fired")]
    rows.extend((e.at, describe(e, cfg)) for e in events)
    rows.sort(key=lambda r: r[0])  # stable: same-instant events keep the timeline's order
    lines = [
        f"h2. Postmortem: {wiki(summary(incident))}",
        f"*Incident:* #{incident.id} — {issue}",
        f"*Severity:* {wiki(incident.severity)}; *category:* {wiki(incident.category)}; "
        f"*owning team:* {wiki(incident.team)}",
        f"*Times in:* {wiki(zone.key)}",
        "h3. Timeline",
        "||Time||What happened||",
        *(f"|{stamp(at, zone)}|{wiki(cut(text, NOTE_MAX))}|" for at, text in rows),
        "h3. Response against targets",
        "||Measure||Actual||Target||Met||",
        *(f"|{a}|{b}|{c}|{d}|" for a, b, c, d in measures(incident, cfg)),
        *wiki_table(incident, cfg, incident.resolved_at or incident.triggered_at),
    ]
    for section in POSTMORTEM_SECTIONS:
        lines += [f"h3. {section}", "_To be written by the incident owner._"]
    return fit("\n".join(lines), TEXT_MAX)


def postmortem_again(incident: Incident, events: Sequence[Event], cfg: RulesConfig) -> str | None:
    """For an incident that reopened: the comment that brings its postmortem up to date with
    the last cycle (its timeline since the reopen, and how long the cycle took); None for
    one that resolved once."""
    reopened = [n for n, e in enumerate(events) if e.event == "reopened"]
    if not reopened or incident.resolved_at is None:
        return None
    zone = zone_of(incident, cfg)
    cycle = events[reopened[-1] :]
    took = duration_text(max(timedelta(0), incident.resolved_at - cycle[0].at))
    lines = [
        f"h3. Reopened and resolved again ({len(reopened) + 1} cycles in all)",
        f"Reopened {stamp(cycle[0].at, zone)}, resolved {stamp(incident.resolved_at, zone)}: "
        f"{took} this time.",
        "||Time||What happened||",
        *(f"|{stamp(e.at, zone)}|{wiki(cut(describe(e, cfg), NOTE_MAX))}|" for e in cycle),
        *wiki_table(incident, cfg, incident.resolved_at),
    ]
    return fit("\n".join(lines), TEXT_MAX)


def postmortem_fields(
    incident: Incident,
    events: Sequence[Event],
    cfg: RulesConfig,
    issue: str,
    installation: str,
) -> dict[str, Any]:
    """The ``fields`` of the postmortem's create-issue request."""
    assert incident.id is not None and cfg.jira.postmortem is not None
    fields: dict[str, Any] = {
        "project": {"key": project(incident, cfg)},
        "issuetype": {"name": cfg.jira.postmortem.issue_type},
        "summary": cut(one_line(f"Postmortem: {summary(incident)}"), SUMMARY_MAX),
        "description": postmortem_description(incident, events, cfg, issue),
        "labels": [
            postmortem_label(installation, incident.id),
            "postmortem",
            label(f"severity-{incident.severity.lower()}"),
            "alert-receiver",
        ],
    }
    policy = cfg.severities.get(incident.severity)
    if policy:
        fields["priority"] = {"name": policy.jira_priority}
    return fields
