"""Maintenance windows: which apply to an alert at a moment, and what that does to an
incident's trigger. Pure; the windows, the rules and the clock are arguments.

A window from the rules file is written in local wall-clock time in its zone, so a weekly
02:00-04:00 window in Europe/Berlin is 02:00-04:00 Berlin time every week, summer or winter
(each occurrence is the first one's local times moved on by whole ``every`` spans, then
placed in the zone), as Alertmanager's users learned to want it. A window from the API is
two instants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from receiver.config.matchers import Matcher, parse_matcher
from receiver.config.models import RulesConfig
from receiver.domain.delivery import Kind
from receiver.domain.incidents import Change
from receiver.domain.model import AlertStatus, Event, Incident
from receiver.domain.timeline import zone_of

API_PREFIX = "api-"  # an API window's name: api-<id>
TRIGGERS = frozenset({Kind.OPENED, Kind.REOPENED, Kind.SEVERITY_RAISED})


@dataclass(frozen=True)
class Window:
    """A maintenance window. ``start``/``end``: the first occurrence, as local wall-clock
    times in ``zone`` for a rules window (naive), as instants for an API one (aware)."""

    name: str
    matchers: tuple[str, ...]
    start: datetime
    end: datetime
    zone: ZoneInfo
    reason: str = ""
    every: timedelta | None = None
    id: int | None = None  # an API window's
    by: str | None = None  # who made an API window
    ended_by: str | None = None  # who ended an API window early

    @property
    def source(self) -> str:
        """``rules`` or ``api``."""
        return "api" if self.id is not None else "rules"


@cache
def _matcher(text: str) -> Matcher:
    return parse_matcher(text)


def matches(window: Window, labels: Mapping[str, str]) -> bool:
    """Whether every matcher of the window accepts the labels."""
    return all(_matcher(m).matches(labels) for m in window.matchers)


def _placed(window: Window, local: datetime) -> datetime:
    return local if local.tzinfo is not None else local.replace(tzinfo=window.zone)


def occurrence(window: Window, at: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence of the window in force at ``at`` (start inclusive, end exclusive)."""
    found = around(window, at)
    return found if found is not None and found[0] <= at < found[1] else None


def around(window: Window, at: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence in force at ``at``, else the next one to come, else None (over)."""
    if window.every is None:
        start, end = _placed(window, window.start), _placed(window, window.end)
        return (start, end) if at < end else None
    span = window.end - window.start
    local = at.astimezone(window.zone).replace(tzinfo=None)
    count = max(0, (local - window.start) // window.every)
    for n in (count - 1, count, count + 1):
        if n < 0:
            continue
        start = _placed(window, window.start + n * window.every)
        end = _placed(window, window.start + n * window.every + span)
        if at < end:
            return start, end
    return None  # not reached: an occurrence ends after any moment


def applying(
    windows: Iterable[Window], alerts: Sequence[Mapping[str, str]], at: datetime
) -> tuple[Window, datetime] | None:
    """The window that holds a trigger of these alerts at ``at`` (one in force matching
    every alert; of several, the one ending last) and when it ends."""
    if not alerts:
        return None
    best: tuple[Window, datetime] | None = None
    for window in windows:
        found = occurrence(window, at)
        if found is None or not all(matches(window, labels) for labels in alerts):
            continue
        if best is None or found[1] > best[1]:
            best = (window, found[1])
    return best


def from_rules(cfg: RulesConfig) -> list[Window]:
    """The rules file's windows."""
    default = next(iter(cfg.rotations.values())).zone
    return [
        Window(
            w.name,
            tuple(w.matchers),
            w.start,
            w.end,
            ZoneInfo(w.timezone) if w.timezone else default,
            w.reason,
            w.every,
        )
        for w in cfg.maintenance
    ]


def mark(change: Change, windows: Sequence[Window], cfg: RulesConfig, now: datetime) -> Change:
    """A trigger (open, reopen, raise) during a window: the incident marked with it (its
    pages held until the window ends, nobody told) and a timeline entry saying so; for a
    severity that ignores maintenance, only the entry. Any other change as it is."""
    if not TRIGGERS & set(change.notifications):
        return change
    incident = change.incident
    firing = [a.labels for a in change.alerts if a.status is AlertStatus.FIRING]
    found = applying(windows, firing, now) if windows else None
    if found is None:
        if incident.maintenance is None:
            return change
        return replace(change, incident=replace(incident, maintenance=None))
    window, until = found
    policy = cfg.severities.get(incident.severity)
    ignored = policy is not None and policy.ignore_maintenance
    data = {"window": window.name, "until": until.isoformat(), "reason": window.reason,
            "held": not ignored, "zone": zone_of(incident, cfg).key}  # fmt: skip
    held = replace(incident, maintenance=None if ignored else window.name)
    return replace(change, incident=held, events=(*change.events, Event("maintenance", now, data)))


def released(incident: Incident, now: datetime, early_by: str | None = None) -> Change:
    """A held incident's window ended with it still open: its pages go out now, its ack
    clock (and the phases after) running from now (its trigger)."""
    data: dict[str, object] = {"window": incident.maintenance}
    if early_by is not None:
        data["ended_by"] = early_by
    return Change(
        replace(incident, maintenance=None, triggered_at=now),
        events=(Event("maintenance_over", now, data),),
        notifications=(Kind.MAINTENANCE_OVER,),
    )
