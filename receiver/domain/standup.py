"""The daily standup: when it is due (local wall-clock time on the configured days, not on
public holidays, the same hour across a daylight-saving change) and what it says: every
active incident and report, oldest first, with its severity, age, owner, phase and what is
overdue, then what opened and resolved since the last standup. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from receiver.config.models import WEEKDAYS, RulesConfig, StandupConfig
from receiver.domain import phases
from receiver.domain.model import Incident, Status
from receiver.domain.oncall import holidays_of, responder
from receiver.domain.slack_render import fit, shown
from receiver.domain.timeline import duration_text

LOOKAHEAD_DAYS = 370  # a standup configured for no day that is ever a standup day: none


def standup_zone(standup: StandupConfig, cfg: RulesConfig) -> ZoneInfo:
    """Its time zone: its own, else that of the first rotation in the rules file."""
    if standup.timezone:
        return ZoneInfo(standup.timezone)
    return next(iter(cfg.rotations.values())).zone


def is_standup_day(standup: StandupConfig, day: date) -> bool:
    """One of its days, and not a public holiday of its country."""
    if WEEKDAYS[day.weekday()] not in standup.days:
        return False
    return standup.holidays is None or day not in holidays_of(standup.holidays)


def _at(standup: StandupConfig, day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, standup.at, tzinfo=zone)


def _nearest(moment: datetime, cfg: RulesConfig, step: int) -> datetime | None:
    """The first standup strictly after (``step`` 1) or before (-1) ``moment``."""
    standup = cfg.standup
    if standup is None:
        return None
    zone = standup_zone(standup, cfg)
    day = moment.astimezone(zone).date()
    for _ in range(LOOKAHEAD_DAYS):
        at = _at(standup, day, zone)
        if is_standup_day(standup, day) and (at > moment if step > 0 else at < moment):
            return at
        day += timedelta(days=step)
    return None


def next_standup(after: datetime, cfg: RulesConfig) -> datetime | None:
    """The first standup strictly after ``after`` (None: no standup configured)."""
    return _nearest(after, cfg, 1)


def previous_standup(before: datetime, cfg: RulesConfig) -> datetime | None:
    """The last standup strictly before ``before``."""
    return _nearest(before, cfg, -1)


@dataclass(frozen=True)
class Active:
    """One active incident or report as the standup lists it."""

    id: int | None
    label: str
    age: timedelta
    owner: str
    phase: str
    overdue: tuple[str, ...]


def _name(cfg: RulesConfig, person: str | None) -> str:
    found = cfg.people.get(person or "")
    return found.name if found else (person or "?")


# What each phase an open incident is in is called.
PHASE_WORDS = {"ack": "waiting for an ack", "mitigate": "acknowledged, being mitigated",
               "resolve": "mitigated, being fixed"}  # fmt: skip


def active(incident: Incident, cfg: RulesConfig, now: datetime) -> Active:
    """What the standup says of one open incident: its phase and any phase past its
    deadline (without phase targets: the ack timeout and respond-within)."""
    policy = cfg.severities.get(incident.severity)
    team = cfg.teams.get(incident.team)
    if incident.status is Status.ACKNOWLEDGED:
        owner = _name(cfg, incident.mitigated_by or incident.acknowledged_by)
        phase = "acknowledged, being fixed"
    else:
        rotation = team.rotation if team and team.rotation in cfg.rotations else None
        on_call = responder(cfg, rotation, now).person if rotation else None
        owner, phase = f"{_name(cfg, on_call)} (on call)", "waiting for an ack"
    overdue: list[str] = []
    if policy is not None and policy.phases is not None:
        phase = PHASE_WORDS.get(phases.current(incident) or "", phase)
        overdue = [
            f"{name} overdue by {duration_text(now - at)}"
            for name, at in phases.overdue(incident, cfg, now)
        ]
    elif policy is not None:
        if incident.status is Status.TRIGGERED:
            late = now - (incident.triggered_at + policy.ack_timeout)
            if late > timedelta(0):
                overdue.append(f"ack overdue by {duration_text(late)}")
        late = now - (incident.first_starts_at + policy.respond_within)
        if late > timedelta(0):
            overdue.append(f"fix overdue by {duration_text(late)}")
    kind = "report" if incident.source == "report" else incident.category
    label = f"#{incident.id} [{incident.severity}][{kind}] {incident.summary}"
    return Active(incident.id, label, now - incident.opened_at, owner, phase, tuple(overdue))


def render_standup(
    incidents: Sequence[Incident], cfg: RulesConfig, now: datetime, since: datetime | None
) -> str:
    """The standup as Slack mrkdwn (every text from incidents shown as written)."""
    standup = cfg.standup
    zone = standup_zone(standup, cfg) if standup else ZoneInfo("UTC")
    local = now.astimezone(zone)
    head = f"*Daily standup*: {local:%a %d %b %Y %H:%M} {local.tzname()}"
    open_ones = sorted(
        (i for i in incidents if i.status is not Status.RESOLVED), key=lambda i: i.opened_at
    )
    lines = [head, f"*Active:* {len(open_ones)}" if open_ones else "*Active:* none"]
    for item in (active(i, cfg, now) for i in open_ones):
        late = f" — *{'; '.join(item.overdue)}*" if item.overdue else ""
        lines.append(
            f"• {shown(item.label)}: {duration_text(item.age)} old, {shown(item.owner)}, "
            f"{item.phase}{late}"
        )
    if since is not None:
        opened = [i for i in incidents if i.opened_at >= since]
        done = [i for i in incidents if i.resolved_at is not None and i.resolved_at >= since]
        when = since.astimezone(zone)
        lines.append(f"*Since the last standup* ({when:%a %H:%M}): {len(opened)} opened, "
                     f"{len(done)} resolved")  # fmt: skip
        lines += [f"• resolved: {shown(f'#{i.id} [{i.severity}] {i.summary}')}" for i in done]
    return fit("\n".join(lines))
