"""Announcements for beta testers: plain words about what is affected, since when, for how long.

They name no rule, label, host or address: only the category's description of what users
notice, and times in the owning team's time zone, in ``announcements.locale`` (Korean by
default) from the message catalogs. The rules file may override, per category (or for all
under ``default``), what is affected and each message's template, and keep a rule's or a
category's incidents from testers (``announce: false``); the text is Slack mrkdwn that
shows the wording as written (no formatting, link or mention).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from receiver import i18n
from receiver.config.models import AnnouncementTemplate, RulesConfig
from receiver.domain.delivery import Kind
from receiver.domain.heartbeats import RULE_PREFIX, is_silence
from receiver.domain.model import Event, Incident
from receiver.domain.slack_render import escape
from receiver.domain.timeline import zone_of


def _template(cfg: RulesConfig, category: str) -> AnnouncementTemplate:
    wording = cfg.announcements.wording
    merged: dict[str, str] = {}
    for layer in (wording.get("default"), wording.get(category)):  # the category's wins
        if layer is not None:
            merged.update(layer.model_dump(exclude_none=True))
    return AnnouncementTemplate(**merged)


def announces(incident: Incident, cfg: RulesConfig) -> bool:
    """Whether beta testers hear of an incident: its severity announces, and neither its
    rule nor (when the rule does not say) its category says ``announce: false`` (a
    heartbeat's silence is announced only with its own ``announce: true``), and no
    maintenance window holds it (planned work is not an outage; one still open when its
    window ends is announced then). Reports are not announced: their reporters hear back
    themselves."""
    policy = cfg.severities.get(incident.severity)
    if policy is None or not policy.announce or incident.source != "alert":
        return False
    if incident.maintenance is not None:
        return False
    if is_silence(incident.rule):  # the alert path, not the trading service
        beat = cfg.heartbeats.get(incident.rule.removeprefix(RULE_PREFIX))
        return beat is not None and beat.announce
    rule = next((r for r in cfg.rules if r.name == incident.rule), None)
    if rule is not None and rule.announce is not None:
        return rule.announce
    category = cfg.categories.get(incident.category)
    return category is None or category.announce


def announcement(
    what: str, incident: Incident, cfg: RulesConfig, at: datetime | None = None, plain: bool = False
) -> str:
    """The text of one announcement: ``what`` is "opened", "raised" or "resolved"; ``at``
    is when the incident (re)started, default its first alert's start; Slack mrkdwn, or
    ``plain`` text (for Telegram)."""
    template = _template(cfg, incident.category)
    locale = cfg.announcements.locale
    zone = zone_of(incident, cfg)
    if at is None:  # a reopened incident's outage started again at its new trigger
        at = incident.triggered_at if incident.reopened else incident.first_starts_at
    since = at
    until = incident.resolved_at or since
    affected = i18n.lookup(locale, f"affected.{incident.category}")
    values = {
        "affected": template.affected or affected or i18n.text(locale, "affected.other"),
        "since": i18n.when(since, zone, locale),
        "until": i18n.when(until, zone, locale),
        "duration": i18n.duration(max(timedelta(0), until - since), locale),
    }
    text = getattr(template, what) or i18n.lookup(locale, f"announce.{what}") or what
    filled = text.format_map(values)
    return filled if plain else escape(filled)


def announcements_for(
    kinds: Sequence[str], incident: Incident, events: Sequence[Event], cfg: RulesConfig
) -> list[tuple[str, str]]:
    """(kind, plain text) of the announcements an incident change makes, for severities
    that announce: open and reopen, a raise (an opening if the old severity did not
    announce), and the resolve. Slack's are these ``escape``d."""
    if not announces(incident, cfg):
        return []

    def said(what: str, at: datetime | None = None) -> str:
        return announcement(what, incident, cfg, at, plain=True)

    out: list[tuple[str, str]] = []
    for kind in kinds:
        if kind in (Kind.OPENED, Kind.MAINTENANCE_OVER):
            out.append((Kind.ANNOUNCE_OPENED, said("opened")))
        elif kind == Kind.REOPENED:
            again = incident.triggered_at.astimezone(UTC)
            out.append((Kind.ANNOUNCE_OPENED, said("opened", again)))
        elif kind == Kind.SEVERITY_RAISED:
            raised = [e for e in events if e.event == "severity_raised"]
            old = cfg.severities.get(str(raised[-1].data.get("from"))) if raised else None
            what = "raised" if old is not None and old.announce else "opened"
            out.append((f"announce.{what}", said(what)))
        elif kind == Kind.RESOLVED:
            out.append((Kind.ANNOUNCE_RESOLVED, said("resolved")))
    return out
