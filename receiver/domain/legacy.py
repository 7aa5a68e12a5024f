"""Outbox rows written before rows were complete instructions, rendered as instructions.

Until instructions, a row carried the incident as it was at the event (``incident``, a
snapshot), the events (``events``) and, for a page, the person, the step and a ``brief``;
the notifier rendered them at delivery. Rows still pending from such a version are rendered
when they are claimed, from that snapshot laid over the incident as stored (for what the
snapshot did not keep) and the rules in force, so an upgrade loses no delivery. No current
instruction has a top-level ``incident``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain import instructions
from receiver.domain.delivery import Channel, Kind
from receiver.domain.escalation import Page
from receiver.domain.model import Event, Incident, Status

# The snapshot fields an instruction renders, as the old rows kept them.
SNAPSHOT_FIELDS = ("severity", "category", "team", "summary", "jira_key")
RENDERED = frozenset({Channel.JIRA, Channel.SLACK, Channel.PAGER})


def is_legacy(channel: str, payload: dict[str, Any]) -> bool:
    """Whether a row was written by a version that rendered at delivery."""
    return channel in RENDERED and isinstance(payload.get("incident"), dict)


def _as_of(incident: Incident, snapshot: dict[str, Any]) -> Incident:
    """The stored incident with what the snapshot says it was at the event."""
    values: dict[str, Any] = {
        name: snapshot[name] for name in SNAPSHOT_FIELDS if isinstance(snapshot.get(name), str)
    }
    if incident.jira_key:  # the issue found since is the one to act on
        values["jira_key"] = incident.jira_key
    with contextlib.suppress(ValueError):
        values["status"] = Status(snapshot.get("status", incident.status))
    for name in ("acknowledged_by", "resolved_by"):
        if name in snapshot:
            values[name] = snapshot[name]
    return replace(incident, **values)


def _events(payload: dict[str, Any]) -> list[Event]:
    events = []
    for raw in payload.get("events") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("at"), str):
            continue
        data = {k: v for k, v in raw.items() if k not in ("event", "at")}
        events.append(Event(str(raw.get("event", "")), datetime.fromisoformat(raw["at"]), data))
    return events


def render(
    channel: str,
    kind: str,
    payload: dict[str, Any],
    incident: Incident,
    cfg: RulesConfig,
    installation: str,
    timeline: Sequence[Event] = (),
    jira_url: str | None = None,
) -> dict[str, Any]:
    """The instruction an old row meant. ``incident`` is the row's incident as stored now;
    ``timeline`` its timeline, for a postmortem."""
    then = _as_of(incident, payload["incident"])
    if channel == Channel.PAGER:
        step = Page(str(payload.get("person", "")), str(payload.get("target", "")),
                    int(payload.get("step", 0)))  # fmt: skip
        due = payload.get("due_at")
        due_at = datetime.fromisoformat(due) if isinstance(due, str) else then.triggered_at
        told = payload.get("brief") if isinstance(payload.get("brief"), dict) else None
        order = instructions.page(step, then, cfg, due_at, None, jira_url, told)
        if payload.get("slack_id") and not order["slack_id"]:
            order["slack_id"] = payload["slack_id"]  # the person left the rules since
        return order
    if channel == Channel.SLACK:
        return instructions.slack(kind, then, cfg)
    if kind == Kind.POSTMORTEM:
        return instructions.postmortem(then, timeline, cfg, installation)
    return instructions.jira(kind, then, _events(payload), cfg, installation)
