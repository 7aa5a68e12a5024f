"""Outbox instructions: everything one delivery needs, decided and rendered at its event.

A row's payload is what the adapter sends, as it was meant when the event happened: a rules
reload or a later change of the incident never alters it. Adapters add only what earlier
deliveries of the incident recorded (the JIRA key, the Slack messages to update) and what
only the far side knows (whether JIRA is Cloud, which ids a conversation has).

Payload shapes, by channel:

- ``jira``: ``search`` (project and the label that finds the incident's issue again);
  ``create`` (``fields`` and the ``assignee``'s JIRA user) while the incident's issue is not
  known at the event, with a report's ``attachments`` (``n`` and the ``filename`` on the
  issue; the bytes are the store's, immutable); then what the event does to the issue, in
  this order: ``fields`` (the summary, and ``relabel``: the labels of the ``replace``
  prefixes given way to ``labels``), ``assign``, ``priority``, ``transition_before``,
  ``comment``, ``transition_after``, then ``attachments``. A postmortem
  has ``postmortem`` (its own ``search`` and ``fields``, the description naming the
  incident's issue through ``ISSUE_SLOT``).
- ``slack``: ``channel``, ``text`` and ``blocks`` of the incident message as of the event;
  ``update`` (``all`` messages about the incident, or only the channel post, ``alerts``),
  ``reply`` (a line for the post's thread) and ``pages`` (``text`` and ``blocks`` by the
  purpose a page's message was recorded with: pages rendered again once the issue exists).
- ``pager``: ``person``, ``slack_id``, ``text``, ``blocks`` of the direct message,
  ``mention`` (``channel``, ``text``) for the team channel, ``due_at`` and ``severity``.
- ``announce``, ``digest``: ``channel`` and ``text``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain import (
    action_render,
    jira_render,
    page_render,
    phase_render,
    postmortem_render,
    report_render,
    slack_page,
    slack_render,
)
from receiver.domain.delivery import Channel, Kind
from receiver.domain.escalation import Page
from receiver.domain.fallback import trigger_tag
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.notifications import COALESCED_KINDS, brief, notification_payload, snapshot
from receiver.domain.oncall import responder
from receiver.domain.reports import Attachment, FiledReport
from receiver.domain.timeline import describe, zone_of

# Where a postmortem names the incident's issue, whose key may not exist yet at the event.
# Wiki escaping turns every brace from alerts into an entity, so only this one is left.
ISSUE_SLOT = "{incident-issue}"
# The timeline entries that say what a maintenance window did to the incident.
MAINTENANCE_EVENTS = frozenset({"maintenance", "maintenance_over", "silenced"})
# The Slack kinds that bring every message about the incident up to date.
UPDATES_ALL = frozenset(
    {
        Kind.ACKNOWLEDGED,
        Kind.MITIGATED,
        Kind.RESOLVED,
        Kind.REOPENED,
        Kind.SEVERITY_RAISED,
        Kind.UNACKNOWLEDGED,
    }
)


def names(cfg: RulesConfig) -> dict[str, str]:
    """People's display names by id."""
    return {pid: p.name for pid, p in cfg.people.items()}


def jira_user(incident: Incident, cfg: RulesConfig) -> str | None:
    """The JIRA user of the incident's assignee, if it has one, else of whoever was on call
    for the incident's team when it opened."""
    chosen = cfg.people.get(incident.assignee) if incident.assignee else None
    if chosen is not None and chosen.jira_user:
        return chosen.jira_user
    team = cfg.teams.get(incident.team)
    if team is None or team.rotation not in cfg.rotations:
        return None
    person = cfg.people.get(responder(cfg, team.rotation, incident.opened_at).person)
    return person.jira_user if person else None


def _event(event: Event) -> dict[str, Any]:
    """An event as a coalesced instruction keeps it (to count what it folds)."""
    return {"event": event.event, "at": event.at.isoformat(), "count": event.data.get("count", 0)}


def _search(incident: Incident, cfg: RulesConfig, label: str) -> dict[str, str]:
    return {"project": jira_render.project(incident, cfg), "label": label}


def jira(
    kind: str,
    incident: Incident,
    events: Sequence[Event],
    cfg: RulesConfig,
    installation: str,
    alerts: Sequence[AlertRecord] = (),
    report: FiledReport | None = None,
) -> dict[str, Any]:
    """The JIRA instruction of one event; ``alerts`` (those at hand), or the beta-tester
    ``report`` that opened it, go into the issue's description, should this delivery be
    the one to create it."""
    assert incident.id is not None
    label = jira_render.incident_label(installation, incident.id)
    out: dict[str, Any] = {"search": _search(incident, cfg, label)}
    if kind == Kind.OPENED or (incident.jira_key is None and kind not in COALESCED_KINDS):
        # Made by the open; a later event not knowing the issue may make it too (the open
        # failed for good), but not the joins a storm folds once per webhook.
        total = max(incident.firing_alerts, len(alerts))
        shown = alerts[: jira_render.ALERTS_IN_DESCRIPTION]
        text = report_render.description(report, incident, cfg) if report else None
        fields = jira_render.issue_fields(incident, shown, cfg, total, None, installation, text)
        if report is not None:
            fields["labels"] = [*fields["labels"], report_render.REPORT_LABEL]
            out["private"] = ["create.fields.description"]  # the reporter's contact
            files = report_render.attachment_names(report.report.attachments)
            if files:  # their content is in the store, by the report's incident and n
                out["attachments"] = [{"n": n, "filename": f} for n, f in enumerate(files)]
        out["create"] = {"fields": fields, "assignee": jira_user(incident, cfg)}
    window = [e for e in events if e.event in MAINTENANCE_EVENTS]
    note = "\n".join(jira_render.wiki(describe(e, cfg)) for e in window)
    if kind == Kind.OPENED:
        if note:  # in JIRA from the start: why nobody was paged
            out["comment"] = note
        return out
    if kind == Kind.ALERTS_JOINED:
        joined = sum(int(e.data.get("count", 0)) for e in events if e.event == "alerts_joined")
        last = jira_render.minute(events[-1].at, zone_of(incident, cfg)) if events else ""
        out.update(events=[_event(e) for e in events], joined=joined, last_at=last)
        out["comment"] = jira_render.joined_comment(joined, 1, last)
        return out
    if kind == Kind.SEVERITY_RAISED or (
        kind == Kind.TRIAGED and any("severity" in e.data for e in events)
    ):
        policy = cfg.severities.get(incident.severity)
        if policy:
            out["priority"] = policy.jira_priority
    if kind == Kind.SEVERITY_RAISED or (
        kind == Kind.TRIAGED and any(k in e.data for e in events for k in ("severity", "category"))
    ):  # the summary and labels say the severity, category and team of now
        tags = jira_render.labels(incident, installation)
        if incident.source == "report":
            tags.append(report_render.REPORT_LABEL)
        relabel = {"replace": list(jira_render.RELABELLED), "labels": tags}
        out["fields"] = {"summary": jira_render.summary(incident), "relabel": relabel}
    if kind == Kind.TRIAGED:
        assigned = [e.data["assignee"] for e in events if e.data.get("assignee")]
        person = cfg.people.get(str(assigned[-1])) if assigned else None
        if person is not None and person.jira_user:
            out["assign"] = person.jira_user
    if kind == Kind.REASSIGNED:
        chosen = cfg.people.get(incident.assignee or "")
        if chosen is not None and chosen.jira_user:
            out["assign"] = chosen.jira_user
    if kind == Kind.REOPENED:
        out["transition_before"] = cfg.jira.reopen_transition
    if kind in phase_render.PHASE_KINDS:
        out["comment"] = phase_render.jira_comment(kind, incident, events, cfg)
    elif kind in action_render.ACTION_KINDS:
        out["comment"] = action_render.jira_comment(kind, incident, events, cfg)
    elif kind in (Kind.MAINTENANCE_OVER, Kind.SILENCED):
        out["comment"] = note
    else:
        payload = notification_payload(kind, incident, events)
        out["comment"] = jira_render.comment(kind, payload, cfg)
        if note:
            out["comment"] += "\n" + note
    if kind == Kind.RESOLVED:
        out["transition_after"] = cfg.jira.resolve_transition
    return out


def reporter_comment(
    incident: Incident,
    cfg: RulesConfig,
    installation: str,
    text: str,
    at: datetime,
    attachments: Sequence[Attachment] = (),
    first: int = 0,
    left: Sequence[str] = (),
) -> dict[str, Any]:
    """The JIRA instruction of a reporter writing again: a comment with what they wrote,
    and their new files (stored under the report from ``first`` on) uploaded."""
    assert incident.id is not None
    label = jira_render.incident_label(installation, incident.id)
    when = jira_render.minute(at, zone_of(incident, cfg))
    start = first + 1
    body = report_render.comment(text, "email", when, attachments, start, left)
    out: dict[str, Any] = {"search": _search(incident, cfg, label), "comment": body}
    out["private"] = ["comment"]  # the reporter's own words may name them
    names = report_render.attachment_names(attachments, start)
    if names:
        out["attachments"] = [{"n": first + i, "filename": f} for i, f in enumerate(names)]
    return out


def postmortem(
    incident: Incident, timeline: Sequence[Event], cfg: RulesConfig, installation: str
) -> dict[str, Any]:
    """The postmortem instruction, written at the resolve from the whole timeline."""
    assert incident.id is not None
    label = postmortem_render.postmortem_label(installation, incident.id)
    fields = postmortem_render.postmortem_fields(incident, timeline, cfg, ISSUE_SLOT, installation)
    order: dict[str, Any] = {"search": _search(incident, cfg, label), "fields": fields}
    again = postmortem_render.postmortem_again(incident, timeline, cfg)
    if again is not None:  # a postmortem written at an earlier resolve gets this cycle
        order["again"] = again
    return {
        "search": _search(incident, cfg, jira_render.incident_label(installation, incident.id)),
        "postmortem": order,
    }


def slack(
    kind: str, incident: Incident, cfg: RulesConfig, events: Sequence[Event] = ()
) -> dict[str, Any]:
    """The alerts channel's instruction of one event."""
    assert incident.id is not None
    view, people = snapshot(incident), names(cfg)
    window = [describe(e, cfg) for e in events if e.event in MAINTENANCE_EVENTS]
    if kind in phase_render.PHASE_KINDS:
        text = phase_render.slack_text(kind, incident, events, cfg)
    elif kind in action_render.ACTION_KINDS:
        text = action_render.slack_text(kind, incident, events, cfg)
    elif kind in (Kind.MAINTENANCE_OVER, Kind.SILENCED) and window:
        head = slack_render.event_text(Kind.OPENED, view, people).removeprefix("New incident: ")
        text = slack_render.fit(f"{slack_render.shown(window[-1])} — {head}")
    else:
        text = slack_render.event_text(kind, view, people)
    held = window[-1] if window and incident.maintenance else ""
    out: dict[str, Any] = {
        "channel": cfg.channels.alerts,
        "text": text,
        "blocks": slack_render.incident_blocks(incident.id, view, people, held),
    }
    if kind == Kind.JIRA_LINKED:
        out["update"] = "alerts"  # the post shows the key now; pages get ``pages``
    elif kind != Kind.OPENED:
        out["update"] = "all" if kind in UPDATES_ALL else None
        out["reply"] = text
    return out


def page(
    step: Page,
    incident: Incident,
    cfg: RulesConfig,
    due_at: datetime,
    alert: AlertRecord | None = None,
    jira_url: str | None = None,
    told: dict[str, Any] | None = None,
    fallback: str | None = None,
) -> dict[str, Any]:
    """The page instruction: the direct message to one person, and the mention in the
    team channel (``fallback``: why an earlier channel of theirs gave way). ``due_at``
    (when the step was due) is where its page latency is measured from; ``alert`` one of
    the incident's alerts for what the message tells (or ``told``, that already made)."""
    assert incident.id is not None
    person = cfg.people.get(step.person)
    view, people = snapshot(incident), names(cfg)
    told = told if told is not None else brief(incident, alert, cfg)
    facts = {"brief": told, "step": step.step, "target": step.target, "fallback": fallback}
    user = person.slack_id if person else None
    team = cfg.teams.get(incident.team)
    mention = None
    if team and team.channel and user:
        # only a well-formed user id becomes a mention; anything else is shown as text
        who = f"<@{user}>" if slack_render.USER_ID.fullmatch(user) else slack_render.shown(user)
        line = f"{who} paged for #{incident.id}: {slack_render.headline(view)}"
        mention = {"channel": team.channel, "text": slack_render.fit(line)}
    return {
        "due_at": due_at.isoformat(),
        "severity": incident.severity,
        "person": step.person,
        "name": person.name if person else step.person,
        "slack_id": user,
        "step": step.step,
        "text": slack_page.page_text(view, people, told),
        "blocks": slack_page.page_blocks(incident.id, view, people, facts, jira_url),
        "mention": mention,
    }


# The outbox channel that carries a page on each of a person's channels.
PAGE_LANES = {"slack": Channel.PAGER, "telegram": Channel.TELEGRAM, "email": Channel.EMAIL}


def page_via(
    medium: str,
    step: Page,
    incident: Incident,
    cfg: RulesConfig,
    due_at: datetime,
    told: dict[str, Any],
    urls: dict[str, str | None],
    attempt: int = 0,
    fallback: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """A page to one person on one of their channels (``attempt``: its place in their
    ``notify``; ``fallback``: why an earlier channel gave way): the outbox channel and the
    instruction. Slack's is ``page``'s; Telegram's a message with buttons to the person's
    chat; e-mail's a message to their address."""
    assert incident.id is not None
    person = cfg.people.get(step.person)
    facts = {
        "due_at": due_at.isoformat(),
        "severity": incident.severity,
        "person": step.person,
        "name": person.name if person else step.person,
        "step": step.step,
        "target": step.target,
        "medium": medium,
        "attempt": attempt,
        "trigger": trigger_tag(incident.triggered_at),  # which open, reopen or raise it is of
    }
    if fallback:
        facts["fallback"] = fallback
    if medium == "slack":
        order = page(step, incident, cfg, due_at, None, urls.get("jira_url"), told, fallback)
        return Channel.PAGER, {**order, **facts}
    view = snapshot(incident)
    page_facts = {"brief": told, "channel": medium.capitalize(), **facts}
    address = person.address(medium) if person else None
    if medium == "telegram":
        shown = page_render.telegram_page(incident.id, view, page_facts, urls)
        order = {**facts, "chat_id": address, **shown}
        order["purpose"] = f"page:{step.step}:{step.person}"
        return Channel.TELEGRAM, order
    mail = page_render.email_page(incident.id, view, page_facts, urls)
    tag = f"{incident.id}.{due_at.timestamp():.0f}.{step.step}.{step.person}.{attempt}"
    order = {**facts, "to": address, **mail, "message_id": f"<page.{tag}@alert-receiver>"}
    order["private"] = ["to"]
    return Channel.EMAIL, order


def telegram_update(kind: str, incident: Incident, cfg: RulesConfig) -> dict[str, Any]:
    """Pages on Telegram brought up to date by an event: their new text and buttons."""
    assert incident.id is not None
    return {"update": page_render.telegram_update(incident.id, snapshot(incident), names(cfg))}


def _block_texts(blocks: Sequence[dict[str, Any]]) -> list[str]:
    texts = []
    for block in blocks:
        parts = [block.get("text"), *(block.get("elements") or [])]
        texts += [
            p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return texts


def preview(channel: str, payload: dict[str, Any]) -> str:
    """What one delivery shows its readers, as text: what log-only mode logs, so someone
    trying the receiver without accounts sees what people will be sent."""
    if channel == Channel.JIRA:
        parts = []
        if "create" in payload:
            parts.append(f"create issue: {payload['create']['fields'].get('summary', '')}")
        if "postmortem" in payload:
            parts.append(f"create issue: {payload['postmortem']['fields'].get('summary', '')}")
        if payload.get("comment"):
            parts.append(f"comment: {payload['comment']}")
        return "\n".join(parts)
    if channel == Channel.REPORTER:
        return f"e-mail to the reporter: {payload.get('subject', '')}"
    if channel == Channel.PAGER:
        head = f"{payload.get('text', '')} (to {payload.get('name') or payload.get('person')})"
        return "\n".join([head, *_block_texts(payload.get("blocks") or [])[1:]])
    if channel in (Channel.TELEGRAM, Channel.EMAIL) and payload.get("person"):
        who = payload.get("name") or payload.get("person")
        return f"{channel} page to {who}: {payload.get('subject') or payload.get('text', '')}"
    if channel == Channel.TELEGRAM and payload.get("update"):
        return f"telegram pages now say: {payload['update'].get('text', '')}"
    return str(payload.get("reply") or payload.get("text", ""))


def loggable(payload: dict[str, Any]) -> dict[str, Any]:
    """An instruction as it may be logged: the parts it marks private (``private``: dotted
    paths, e.g. a report's description with the reporter's contact) replaced by a note."""
    paths = payload.get("private") or []
    if not paths:
        return payload
    out: dict[str, Any] = json.loads(json.dumps(payload))
    for path in paths:
        *parents, last = str(path).split(".")
        node: Any = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = f"<{len(str(node[last]))} characters, not logged: private>"
    return out
