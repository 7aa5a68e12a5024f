"""What JIRA and the alerts channel are told when people act on an incident (a note, a
reassignment, an ack taken back): pure functions. Text from people is shown as written,
escaped by each medium's renderer."""

from __future__ import annotations

from collections.abc import Sequence

from receiver.config.models import RulesConfig
from receiver.domain import slack_render
from receiver.domain.delivery import Kind
from receiver.domain.jira_render import COMMENT_MAX, NOTE_MAX, cut, fit, wiki, wiki_lines
from receiver.domain.model import Event, Incident
from receiver.domain.timeline import stamp, zone_of

# The kinds rendered here, and the timeline entry each is about.
EVENTS: dict[str, str] = {
    Kind.NOTE: "note",
    Kind.REASSIGNED: "reassigned",
    Kind.UNACKNOWLEDGED: "unacknowledged",
}
ACTION_KINDS = frozenset(EVENTS)
MINUTE = "%Y-%m-%d %H:%M"


def _name(cfg: RulesConfig, who: object) -> str:
    return cfg.people[who].name if isinstance(who, str) and who in cfg.people else str(who)


def _event(kind: str, events: Sequence[Event]) -> Event | None:
    return next((e for e in reversed(events) if e.event == EVENTS.get(kind)), None)


def sentence(kind: str, incident: Incident, events: Sequence[Event], cfg: RulesConfig) -> str:
    """The action in one line, unescaped (a note's own text is not in it)."""
    found = _event(kind, events)
    data = found.data if found is not None else {}
    at = stamp(found.at, zone_of(incident, cfg), MINUTE) if found is not None else "?"
    by = _name(cfg, data.get("by", "someone"))
    if kind == Kind.NOTE:
        return f"Note by {by} at {at}:"
    if kind == Kind.REASSIGNED:
        to = _name(cfg, data.get("to", "?"))
        was = f" (was {_name(cfg, data['from'])})" if data.get("from") else ""
        paged = f"; {to} is paged" if data.get("people") else ""
        return f"Reassigned to {to} by {by} at {at}{was}{paged}."
    if kind == Kind.UNACKNOWLEDGED:
        acked = data.get("acknowledged_by")
        whose = f" by {_name(cfg, acked)}" if acked else ""
        return (
            f"Acknowledgement{whose} taken back by {by} at {at}: triggered again, "
            "escalation starts again from step 0."
        )
    return f"{kind} by {by} at {at}."


def jira_comment(kind: str, incident: Incident, events: Sequence[Event], cfg: RulesConfig) -> str:
    """The comment the action adds to the incident's issue (a note's text line by line)."""
    head = wiki(cut(sentence(kind, incident, events, cfg), NOTE_MAX * 4))
    found = _event(kind, events)
    if kind != Kind.NOTE or found is None:
        return head
    return fit(f"{head}\n{wiki_lines(str(found.data.get('text', '')))}", COMMENT_MAX)


def slack_text(kind: str, incident: Incident, events: Sequence[Event], cfg: RulesConfig) -> str:
    """The alerts channel's line (a reply in the incident's thread) for the action."""
    head = f"[{incident.severity}][{incident.category}] {incident.summary}"
    return slack_render.fit(slack_render.shown(f"{sentence(kind, incident, events, cfg)} — {head}"))
