"""Announcements for beta testers: plain words about what is affected, since when, for how long.

They name no rule, label, host or address: only the category's description of what users
notice, and times in the owning team's time zone. The rules file may override, per
category (or for all under ``default``), what is affected and each message's template;
the text is Slack mrkdwn that shows the wording as written (no formatting, link or mention).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from receiver.config.models import AnnouncementTemplate, RulesConfig
from receiver.domain.delivery import Kind
from receiver.domain.model import Event, Incident
from receiver.domain.slack_render import escape
from receiver.domain.timeline import duration_text, stamp, zone_of

# What beta testers notice when something in a category breaks.
AFFECTED: dict[str, str] = {
    "functional": "trading (placing and viewing orders)",
    "api": "orders and balances sent through our brokerage partner",
    "performance": "how fast the app responds",
    "data": "market prices and charts",
    "security": "signing in and account access",
    "ui": "the app's screens",
    "network": "connecting to the trading service",
}
AFFECTED_FALLBACK = "parts of the trading service"

DEFAULT_TEMPLATES: dict[str, str] = {
    "opened": (
        "We are looking into a problem affecting {affected}. It started at {since}. "
        "We will post here as soon as it is fixed."
    ),
    "raised": (
        "Update: the problem affecting {affected} (since {since}) has become more serious. "
        "Our team is working on it with top priority."
    ),
    "resolved": (
        "Fixed: the problem affecting {affected} is resolved as of {until}. It started at "
        "{since} and lasted {duration}. Thank you for your patience."
    ),
}
TESTER_TIME = "%d %b %Y %H:%M"  # 26 Nov 2026 10:00 KST


def _template(cfg: RulesConfig, category: str) -> AnnouncementTemplate:
    own = cfg.announcements.get(category)
    default = cfg.announcements.get("default")
    merged: dict[str, str] = {}
    for layer in (default, own):  # the category's own wording wins over the default's
        if layer is not None:
            merged.update(layer.model_dump(exclude_none=True))
    return AnnouncementTemplate(**merged)


def announcement(
    what: str, incident: Incident, cfg: RulesConfig, at: datetime | None = None
) -> str:
    """The text of one announcement: ``what`` is "opened", "raised" or "resolved"; ``at``
    is when the incident (re)started, default its first alert's start."""
    template = _template(cfg, incident.category)
    zone = zone_of(incident, cfg)
    if at is None:  # a reopened incident's outage started again at its new trigger
        reopened = incident.triggered_at > incident.opened_at
        at = incident.triggered_at if reopened else incident.first_starts_at
    since = at
    until = incident.resolved_at or since
    values = {
        "affected": template.affected or AFFECTED.get(incident.category, AFFECTED_FALLBACK),
        "since": stamp(since, zone, TESTER_TIME),
        "until": stamp(until, zone, TESTER_TIME),
        "duration": duration_text(max(timedelta(0), until - since)),
    }
    text = getattr(template, what) or DEFAULT_TEMPLATES[what]
    return escape(text.format_map(values))


def announcements_for(
    kinds: Sequence[str], incident: Incident, events: Sequence[Event], cfg: RulesConfig
) -> list[tuple[str, str]]:
    """(kind, text) of the announcements an incident change makes, for severities that
    announce: open and reopen, a raise (an opening if the old severity did not announce),
    and the resolve."""
    policy = cfg.severities.get(incident.severity)
    if policy is None or not policy.announce:
        return []
    out: list[tuple[str, str]] = []
    for kind in kinds:
        if kind == Kind.OPENED:
            out.append((Kind.ANNOUNCE_OPENED, announcement("opened", incident, cfg)))
        elif kind == Kind.REOPENED:
            again = incident.triggered_at.astimezone(UTC)
            out.append((Kind.ANNOUNCE_OPENED, announcement("opened", incident, cfg, again)))
        elif kind == Kind.SEVERITY_RAISED:
            raised = [e for e in events if e.event == "severity_raised"]
            old = cfg.severities.get(str(raised[-1].data.get("from"))) if raised else None
            what = "raised" if old is not None and old.announce else "opened"
            out.append((f"announce.{what}", announcement(what, incident, cfg)))
        elif kind == Kind.RESOLVED:
            out.append((Kind.ANNOUNCE_RESOLVED, announcement("resolved", incident, cfg)))
    return out
