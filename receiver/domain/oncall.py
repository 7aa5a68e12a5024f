"""Who is on call: rotations in wall-clock time (DST-safe), overrides, business hours, pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any

import holidays as public_holidays

from receiver.config.models import RotationConfig, RulesConfig
from receiver.domain.model import Incident

BUSINESS_START = time(9, 0)
BUSINESS_END = time(18, 0)
BUSINESS_DAYS = range(0, 5)  # Monday to Friday
MAX_DAYS_OFF = 366  # looked ahead for the next business day at most


@dataclass(frozen=True)
class OnCall:
    """The person holding a rotation at some instant, and when that ends."""

    rotation: str
    person: str
    shift_end: datetime
    override: bool = False


@dataclass(frozen=True)
class Page:
    """One person to page, why, and when."""

    person: str
    target: str
    at: datetime
    deferred: bool

    def as_json(self) -> dict[str, Any]:
        """The shape route-test prints."""
        return {
            "person": self.person,
            "target": self.target,
            "at": self.at.isoformat(),
            "deferred": self.deferred,
        }


def _aware(local: datetime, rot: RotationConfig) -> datetime:
    return local.replace(tzinfo=rot.zone)


def oncall_at(name: str, rot: RotationConfig, at: datetime) -> OnCall:
    """The rotation's on-call at an aware instant.

    Shifts are counted in local wall-clock time, so a handoff at 09:00 stays at 09:00
    on both sides of a daylight-saving change.
    """
    local = at.astimezone(rot.zone).replace(tzinfo=None)
    for override in rot.overrides:
        if override.start <= local < override.end:
            return OnCall(name, override.person, _aware(override.end, rot), override=True)
    index = (local - rot.handoff) // rot.shift
    shift_end = rot.handoff + (index + 1) * rot.shift
    # An override starting before the regular shift ends cuts the shift short.
    starts = [o.start for o in rot.overrides if local < o.start < shift_end]
    end = min([shift_end, *starts])
    return OnCall(name, rot.members[index % len(rot.members)], _aware(end, rot))


@cache
def holidays_of(country: str) -> public_holidays.HolidayBase:
    """A country's public holidays (filled in by year as asked)."""
    return public_holidays.country_holidays(country)


def is_business_day(rot: RotationConfig, day: date) -> bool:
    """Mon-Fri, and neither a public holiday of the rotation's country nor a day off."""
    if day.weekday() not in BUSINESS_DAYS or day in rot.days_off:
        return False
    return rot.holidays is None or day not in holidays_of(rot.holidays)


def in_business_hours(rot: RotationConfig, at: datetime) -> bool:
    """09:00-18:00 of a business day in the rotation's time zone."""
    local = at.astimezone(rot.zone)
    return is_business_day(rot, local.date()) and BUSINESS_START <= local.time() < BUSINESS_END


def next_business_start(rot: RotationConfig, at: datetime) -> datetime:
    """The start of the next business hours at or after ``at`` (``at`` itself if inside)."""
    if in_business_hours(rot, at):
        return at
    local = at.astimezone(rot.zone)
    day = local.date()
    if local.time() >= BUSINESS_START:
        day += timedelta(days=1)
    for _ in range(MAX_DAYS_OFF):  # a rotation with no business day at all cannot hang this
        if is_business_day(rot, day):
            break
        day += timedelta(days=1)
    return datetime.combine(day, BUSINESS_START, tzinfo=rot.zone)


def responder(cfg: RulesConfig, rotation: str, at: datetime) -> OnCall:
    """Who answers for a rotation: its on-call, or its fallback's when it is off hours."""
    rot = cfg.rotations[rotation]
    if rot.hours == "business" and rot.fallback and not in_business_hours(rot, at):
        return responder(cfg, rot.fallback, at)
    return oncall_at(rotation, rot, at)


@dataclass(frozen=True)
class RotationNow:
    """A rotation at an instant, as ``receiver oncall`` shows it: its own on-call and shift
    end and, for a business-hours rotation off hours, who answers instead (its fallback's
    responder, else its own on-call) and when its hours start again."""

    oncall: OnCall
    off_hours: bool = False
    paged_instead: OnCall | None = None
    business_hours_from: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The shape ``receiver oncall --json`` prints."""
        row: dict[str, Any] = {
            "rotation": self.oncall.rotation,
            "person": self.oncall.person,
            "shift_end": self.oncall.shift_end.isoformat(),
            "off_hours": self.off_hours,
        }
        if self.paged_instead is not None and self.business_hours_from is not None:
            instead = self.paged_instead
            row["paged_instead"] = {"rotation": instead.rotation, "person": instead.person}
            row["business_hours_from"] = self.business_hours_from.isoformat()
        return row


def rotations_now(
    cfg: RulesConfig, at: datetime, names: Sequence[str] | None = None
) -> list[RotationNow]:
    """Every rotation (or those named) at an instant, in the rules file's order."""
    rows = []
    for name in cfg.rotations if names is None else names:
        rot = cfg.rotations[name]
        current = oncall_at(name, rot, at)
        if rot.hours == "business" and not in_business_hours(rot, at):
            instead = responder(cfg, name, at)
            rows.append(RotationNow(current, True, instead, next_business_start(rot, at)))
        else:
            rows.append(RotationNow(current))
    return rows


def page_time(cfg: RulesConfig, team: str, severity: str, at: datetime) -> datetime | None:
    """When a page for this severity may go out: now, the next business hours, or never."""
    mode = cfg.severities[severity].page
    if mode == "never":
        return None
    if mode == "business_hours":
        return next_business_start(cfg.rotations[cfg.teams[team].rotation], at)
    return at


def held_until(incident: Incident, cfg: RulesConfig, trigger: datetime) -> datetime | None:
    """When the pages of a trigger held back for business hours go out, if they are."""
    if incident.team not in cfg.teams or incident.severity not in cfg.severities:
        return None
    start = page_time(cfg, incident.team, incident.severity, trigger)
    return start if start is not None and start > trigger else None


def resolve_targets(
    cfg: RulesConfig, team: str, targets: list[str], at: datetime
) -> list[tuple[str, str]]:
    """(person, target) pairs for notify targets, each person once, in target order."""
    team_cfg = cfg.teams[team]
    found: list[tuple[str, str]] = []
    for target in targets:
        kind, _, ref = target.partition(":")
        if target == "oncall":
            people = [responder(cfg, team_cfg.rotation, at).person]
        elif target == "team":
            people = list(cfg.rotations[team_cfg.rotation].members)
        elif target == "team_lead":
            people = [team_cfg.lead]
        elif target == "tech_lead":
            people = [cfg.roles.tech_lead]
        elif target == "project_manager":
            people = [cfg.roles.project_manager]
        elif kind == "person":
            people = [ref]
        elif kind == "rotation":
            people = [responder(cfg, ref, at).person]
        else:
            people = []
        for person in people:
            if all(person != p for p, _ in found):
                found.append((person, target))
    return found


def step_zero_pages(cfg: RulesConfig, team: str, severity: str, at: datetime) -> list[Page]:
    """Whom the first escalation step pages for an incident opened at ``at``."""
    steps = cfg.steps_for(severity)
    if not steps:
        return []
    due = page_time(cfg, team, severity, at + steps[0].after)
    if due is None:
        return []
    deferred = due > at + steps[0].after
    return [
        Page(person, target, due, deferred)
        for person, target in resolve_targets(cfg, team, steps[0].notify, due)
    ]
