"""What goes into a JIRA issue and its comments: pure functions of an incident and the rules.

Everything here respects JIRA's limits: a summary is one line of at most 255 characters,
labels have no spaces and at most 255 characters, a description or comment is at most
32,767 characters (an alert list that does not fit says how many alerts it left out).
Text from alerts and the rules is shown as written: it cannot format, link, start a
heading or list, or break a table; only http(s) addresses become links.

Longer than most modules, on purpose: the escaping of JIRA's wiki markup and the limits
above hold only if every field of an issue is built in one place and through them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from receiver.config.durations import format_duration
from receiver.config.models import RulesConfig
from receiver.domain.delivery import Kind
from receiver.domain.model import AlertRecord, Incident
from receiver.domain.oncall import held_until
from receiver.domain.timeline import stamp, zone_of

SUMMARY_MAX = 255
LABEL_MAX = 255
TEXT_MAX = 32_767
COMMENT_MAX = TEXT_MAX - 100  # room for the delivery tag the notifier appends
NOTE_MAX = 1_000  # an annotation, label value or name, before escaping
DESCRIPTION_MAX = 4_000  # the alert's own description, which may run to several lines
URL_MAX = 4_000
INCIDENT_LABEL_PREFIX = "receiver-incident-"
ALERTS_IN_DESCRIPTION = 200  # alerts listed in a new issue's description
# Labels that tell an engineer where something broke, shown in their own table.
ENVIRONMENT_LABELS = (
    "env", "environment", "cluster", "region", "namespace", "service", "job", "instance", "pod"
)  # fmt: skip
# Characters that start links, tables, images, macros or effects; those that act only at
# a word's edge (-strike-, _em_, +ins+, ??cite??) are left alone inside a word, so host
# names and metric_names read as they are in the page's source too.
_WIKI_SPECIAL = re.compile(r"[\[\]{}|*!^~\\]|[-_+?]")
# Schemes JIRA links by itself in plain text; http(s) it may, as the address shows.
_AUTOLINK = re.compile(r"\b([a-z][a-z0-9+.\-]*):(?=//)|\b(mailto):", re.IGNORECASE)
# What starts a heading, quote, list or rule at the start of a line (the rest is escaped).
_LINE_MARKUP = re.compile(r"(?:h[1-6]|bq)\.|[#\-]", re.IGNORECASE)
_WEB_URL = re.compile(r"https?://[^\s/?#]", re.IGNORECASE)
# A link's address keeps printable ASCII but for what would end or split the link.
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '[]{}|"<>\\^`')


def one_line(text: str) -> str:
    """Collapse newlines, tabs and runs of spaces into single spaces."""
    return " ".join(text.split())


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _entity(char: str) -> str:
    return f"&#{ord(char)};"


def _mark(match: re.Match[str]) -> str:
    mark, at, whole = match.group(), match.start(), match.string
    if mark == "\\":  # "\\" is a line break and "\x" an escape: only an entity shows one
        return _entity(mark)
    inside = 0 < at < len(whole) - 1 and whole[at - 1].isalnum() and whole[at + 1].isalnum()
    return mark if inside and mark in "-_+?" else "\\" + mark


def _unlink(match: re.Match[str]) -> str:
    scheme = match.group(1) or match.group(2)
    return match.group() if scheme.lower() in ("http", "https") else scheme + _entity(":")


def _inline(text: str) -> str:
    return _AUTOLINK.sub(_unlink, _WIKI_SPECIAL.sub(_mark, text))


def wiki(text: str) -> str:
    """Text as one line of JIRA wiki markup, shown as written: it cannot format or link,
    and its line breaks become spaces, so it stays in its table cell or field."""
    return _inline(one_line(text))


def wiki_lines(text: str) -> str:
    """Text of several lines, each shown as ``wiki`` shows a line; none starts a heading,
    quote, list, table, panel or rule."""
    lines = []
    for raw in text.splitlines():
        line = one_line(raw)
        marked = _LINE_MARKUP.match(line) is not None
        lines.append(_entity(line[0]) + _inline(line[1:]) if marked else _inline(line))
    return "\n".join(lines)


def fit(text: str, limit: int) -> str:
    """``cut`` for wiki markup: never ends inside an escape or an entity."""
    if len(text) <= limit:
        return text
    return re.sub(r"(?:\\|&#?\w*)$", "", text[: limit - 1]) + "…"


def web_url(url: str) -> str | None:
    """An http(s) address made safe to stand in a wiki link; None for any other."""
    url = url.strip()
    return quote(url, safe=_URL_SAFE) if _WEB_URL.match(url) else None


def link(url: str | None, label: str = "") -> str:
    """An http(s) address as a link (``[label|url]``, or ``[url]`` showing the address);
    any other address as escaped text, none as "not given"."""
    safe = web_url(url or "")
    if safe is not None and len(safe) <= URL_MAX:
        return f"[{label}|{safe}]" if label else f"[{safe}]"
    text = wiki(cut(url, NOTE_MAX)) if url and url.strip() else "not given"
    return f"{label}: {text}" if label else text


def incident_label(installation: str, incident_id: int) -> str:
    """The label that identifies an incident's issue, used to find it again: unique to this
    installation, so another receiver sharing the JIRA never takes the issue for its own."""
    return f"{INCIDENT_LABEL_PREFIX}{installation}-{incident_id}"


def label(text: str) -> str:
    """A JIRA-safe label: no whitespace, at most 255 characters."""
    return cut(re.sub(r"\s+", "-", text.strip()), LABEL_MAX) or "-"


def summary(incident: Incident) -> str:
    """``[P1][api] KIS token refresh failing — kis-gateway``: one line, at most 255."""
    return cut(
        one_line(f"[{incident.severity}][{incident.category}] {incident.summary}"), SUMMARY_MAX
    )


# The labels that say what an incident is now, rewritten when its severity or category
# changes (the incident label, which finds the issue, never changes).
RELABELLED = ("severity-", "category-", "team-")


def labels(incident: Incident, installation: str) -> list[str]:
    """The incident label first, then severity, category, rule and team."""
    assert incident.id is not None
    return [
        incident_label(installation, incident.id),
        label(f"severity-{incident.severity.lower()}"),
        label(f"category-{incident.category}"),
        label(f"rule-{incident.rule}"),
        label(f"team-{incident.team}"),
        "alert-receiver",
    ]


def project(incident: Incident, cfg: RulesConfig) -> str:
    """The JIRA project of an incident's issues: its team's, else the rules' default."""
    team = cfg.teams.get(incident.team)
    return (team.jira_project if team else None) or cfg.jira.project


def respond_by(incident: Incident, cfg: RulesConfig) -> datetime | None:
    """The deadline for a response under the severity's policy."""
    policy = cfg.severities.get(incident.severity)
    return incident.first_starts_at + policy.respond_within if policy else None


def paging_line(incident: Incident, cfg: RulesConfig) -> list[str]:
    """A line saying pages are held for business hours, and until when, if they are."""
    start = held_until(incident, cfg, incident.triggered_at)
    if start is None:
        return []
    return [f"*Paging:* held for business hours until {minute(start, zone_of(incident, cfg))}"]


def _table(rows: Sequence[tuple[str, str]]) -> list[str]:
    return ["||Label||Value||", *(f"|{wiki(k)}|{wiki(cut(v, NOTE_MAX)) or ' '}|" for k, v in rows)]


def _expected_actual(alerts: Sequence[AlertRecord]) -> list[str]:
    for alert in alerts:
        found = {**alert.labels, **alert.annotations}
        expected = found.get("expected") or found.get("threshold")
        actual = found.get("actual") or found.get("value")
        if expected or actual:
            return [
                "h3. Expected vs actual",
                f"*Expected:* {wiki(cut(expected or 'not given', NOTE_MAX))}",
                f"*Actual:* {wiki(cut(actual or 'not given', NOTE_MAX))}",
            ]
    return []


def minute(moment: datetime, zone: ZoneInfo) -> str:
    """A time as people read it in the team's zone: ``2026-11-26 10:00 KST``."""
    return stamp(moment, zone, "%Y-%m-%d %H:%M")


def _minute_of(value: object, zone: ZoneInfo) -> str:
    """An ISO time from a payload in the team's zone to the minute; as given if unreadable."""
    try:
        return minute(datetime.fromisoformat(str(value)), zone)
    except ValueError:
        return wiki(cut(str(value), NOTE_MAX))


def _alert_row(alert: AlertRecord, zone: ZoneInfo) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return (
        f"|{alert.status.value}|{wiki(alert.labels.get('alertname', ''))}|"
        f"{wiki(cut(shown, 500))}|{minute(alert.starts_at, zone)}|"
    )


def description(
    incident: Incident, alerts: Sequence[AlertRecord], cfg: RulesConfig, total_alerts: int
) -> str:
    """The issue description in JIRA wiki markup, at most 32,767 characters."""
    policy = cfg.severities.get(incident.severity)
    team = cfg.teams.get(incident.team)
    zone = zone_of(incident, cfg)
    deadline = respond_by(incident, cfg)
    within = f" (within {format_duration(policy.respond_within)})" if policy else ""
    first = alerts[0] if alerts else None
    notes = first.annotations if first else {}
    head = [
        f"h2. {wiki(summary(incident))}",
        f"*Severity:* {wiki(incident.severity)}"
        + (f" — JIRA priority {wiki(policy.jira_priority)}" if policy else ""),
        f"*Respond by:* {minute(deadline, zone) if deadline else 'n/a'}{within}",
        *paging_line(incident, cfg),
        f"*Category:* {wiki(incident.category)} — owning team *{wiki(incident.team)}*"
        + (f" ({wiki(team.channel)})" if team else ""),
        f"*Incident:* #{incident.id} {wiki(cut(incident.key, NOTE_MAX))}",
        f"*First alert:* {minute(incident.first_starts_at, zone)}",
        "h3. Environment",
        *_table(
            [(k, first.labels[k]) for k in ENVIRONMENT_LABELS if first and first.labels.get(k)]
        ),
        "h3. What the alert says",
        f"*Summary:* {wiki(cut(notes.get('summary', 'not given'), NOTE_MAX))}",
        f"*Description:* {wiki_lines(cut(notes.get('description', 'not given'), DESCRIPTION_MAX))}",
        f"*Runbook:* {link(notes.get('runbook_url'))}",
        *_expected_actual(alerts),
        "h3. Links",
    ]
    if first and first.generator_url:
        head.append(f"* {link(first.generator_url, 'Prometheus graph')}")
    if incident.alertmanager_url:
        head.append(f"* {link(incident.alertmanager_url, 'Alertmanager')}")
    head.append(f"h3. Alerts ({total_alerts})")
    head.append("||Status||Alert||Labels||Started||")
    text = "\n".join(head)
    reserve = 120  # room for the note about left-out alerts
    shown = 0
    for alert in alerts:
        row = "\n" + _alert_row(alert, zone)
        if len(text) + len(row) > TEXT_MAX - reserve:
            break
        text += row
        shown += 1
    if shown < total_alerts:
        text += f"\n_{total_alerts - shown} more alert(s) not listed here; see the receiver's API._"
    return fit(text, TEXT_MAX)


def issue_fields(
    incident: Incident,
    alerts: Sequence[AlertRecord],
    cfg: RulesConfig,
    total_alerts: int,
    assignee: dict[str, str] | None,
    installation: str,
    text: str | None = None,
) -> dict[str, Any]:
    """The ``fields`` of the create-issue request (``text``: a description of its own)."""
    team = cfg.teams.get(incident.team)
    policy = cfg.severities.get(incident.severity)
    fields: dict[str, Any] = {
        "project": {"key": project(incident, cfg)},
        "issuetype": {"name": cfg.jira.issue_type},
        "summary": summary(incident),
        "description": text or description(incident, alerts, cfg, total_alerts),
        "labels": labels(incident, installation),
    }
    if policy:
        fields["priority"] = {"name": policy.jira_priority}
    if team and team.components:
        fields["components"] = [{"name": c} for c in team.components]
    if assignee:
        fields["assignee"] = assignee
    return fields


def delivery_tag(delivery: int) -> str:
    """The last line of each comment: lets a retry see that the comment already went out."""
    return f"_alert receiver · delivery {delivery}_"


def _name(value: object) -> str:
    """A person, severity or priority named in a comment, escaped and bounded."""
    return wiki(cut(str(value), NOTE_MAX))


def joined_comment(count: int, updates: int, last_at: str) -> str:
    """The comment on alerts joining the incident, ``updates`` webhooks folded into one."""
    over = f" over {updates} updates" if updates > 1 else ""
    return cut(f"{count} more alert(s) joined this incident{over}, last at {last_at}.", COMMENT_MAX)


def comment(kind: str, payload: dict[str, Any], cfg: RulesConfig) -> str:
    """The comment an event adds to the issue."""
    events: list[dict[str, Any]] = payload.get("events", [])
    incident = payload.get("incident", {})
    team = cfg.teams.get(str(incident.get("team")))
    rotation = cfg.rotations.get(team.rotation) if team else None
    zone = ZoneInfo(rotation.timezone) if rotation else ZoneInfo("UTC")
    at = _minute_of(events[-1]["at"], zone) if events else ""
    if kind == Kind.ALERTS_JOINED:
        count = sum(int(e.get("count", 0)) for e in events if e.get("event") == "alerts_joined")
        return joined_comment(count, int(payload.get("coalesced", 1)), at)
    if kind == Kind.SEVERITY_RAISED:
        raised = [e for e in events if e.get("event") == "severity_raised"]
        old, new = (raised[-1]["from"], raised[-1]["to"]) if raised else ("?", "?")
        priority = cfg.severities[new].jira_priority if new in cfg.severities else "?"
        return (
            f"Severity raised from {_name(old)} to {_name(new)} at {at}; "
            f"priority set to {_name(priority)}."
        )
    if kind == Kind.TRIAGED:
        return triaged_comment(events[-1] if events else {}, cfg, at)
    if kind == Kind.ACKNOWLEDGED:
        by = incident.get("acknowledged_by") or "someone"
        name = cfg.people[by].name if by in cfg.people else by
        return f"Acknowledged by {_name(name)} at {at}. Escalation stopped."
    if kind == Kind.RESOLVED and events and events[-1].get("with"):
        return f"Resolved with incident #{events[-1]['with']}, which it is linked into, at {at}."
    if kind == Kind.LINKED:
        to = events[-1].get("to") if events else "?"
        return f"Linked into incident #{to} at {at}: resolved with it; its escalation stopped."
    if kind == Kind.RESOLVED:
        by = incident.get("resolved_by")
        how = (
            f"by {_name(cfg.people[by].name if by in cfg.people else by)}"
            if by
            else ("— all alerts resolved")
        )
        return f"Resolved {how} at {at}."
    if kind == Kind.ESCALATED:
        steps = [e for e in events if e.get("event") in ("paged", "escalated")]
        lines = []
        for step in steps:
            people = ", ".join(
                _name(cfg.people[p].name if p in cfg.people else p) for p in step.get("people", [])
            )
            verb = "Paged" if step.get("event") == "paged" else "Escalated"
            if step.get("by"):  # by hand
                who = step["by"]
                verb += f" by {_name(cfg.people[who].name if who in cfg.people else who)}"
            number = _name(step.get("step", "?"))
            lines.append(f"{verb} (step {number}) at {_minute_of(step['at'], zone)} to {people}.")
        return fit("\n".join(lines), COMMENT_MAX) or f"Escalated at {at}."
    if kind == Kind.REOPENED:
        return (
            f"An alert fired again at {at}, within the reopen window: the incident is open again."
        )
    return f"{kind} at {at}."


def triaged_comment(event: dict[str, Any], cfg: RulesConfig, at: str) -> str:
    """``Triaged by Kim Minjun at ...: severity P3 → P1 (priority High), ...``."""
    by = str(event.get("by", "someone"))
    parts = []
    if "severity" in event:
        old, new = event["severity"]
        priority = cfg.severities[new].jira_priority if new in cfg.severities else "?"
        parts.append(f"severity {_name(old)} → {_name(new)} (priority {_name(priority)})")
    if "category" in event:
        old, new = event["category"]
        parts.append(f"category {_name(old)} → {_name(new)}")
    if event.get("assignee"):
        who = str(event["assignee"])
        parts.append(f"assigned to {_name(cfg.people[who].name if who in cfg.people else who)}")
    name = cfg.people[by].name if by in cfg.people else by
    return f"Triaged by {_name(name)} at {at}: {', '.join(parts) or 'no change'}."
