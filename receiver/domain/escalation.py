"""Escalation as stored timers: what to schedule when an incident triggers, and what a due
timer does. Pure functions; the clock and the rules are arguments.

A timer belongs to one *trigger* of an incident (its open, a reopen, or a severity raise),
named by that moment; acknowledging or resolving cancels what is left of it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from receiver.config.models import RulesConfig
from receiver.domain.delivery import Kind
from receiver.domain.model import Event, Incident, Status
from receiver.domain.oncall import page_time, resolve_targets


class TimerKind(enum.StrEnum):
    """What a timer is for."""

    ESCALATION = "escalation"  # page the step's targets
    ACK_SLA = "ack_sla"  # count a breach if nobody acknowledged by then
    TRIAGE = "triage"  # page the triage rotation if a report is still untriaged by then


@dataclass(frozen=True)
class Timer:
    """A stored due time; ``id`` is None until stored."""

    kind: TimerKind
    step: int
    due_at: datetime
    trigger: datetime
    id: int | None = None
    incident_id: int | None = None


@dataclass(frozen=True)
class Page:
    """One person paged by a fired step."""

    person: str
    target: str
    step: int


@dataclass(frozen=True)
class Fired:
    """What a due timer does to its incident."""

    events: tuple[Event, ...] = ()
    notifications: tuple[str, ...] = ()
    pages: tuple[Page, ...] = ()
    breach: bool = False


def plan(incident: Incident, cfg: RulesConfig, trigger: datetime) -> list[Timer]:
    """The timers for a trigger: the ack SLA, and each escalation step ``after`` the moment
    paging may start (at once, or the next business hours; never for ``page: never``)."""
    policy = cfg.severities.get(incident.severity)
    if policy is None or incident.team not in cfg.teams:
        return []
    timers = [Timer(TimerKind.ACK_SLA, 0, trigger + policy.ack_timeout, trigger)]
    # The ladder starts when paging may start (the next business morning for a page held
    # back at night), so its steps keep their spacing instead of all falling due at once.
    start = page_time(cfg, incident.team, incident.severity, trigger)
    if start is None:
        return timers
    for step, rule in enumerate(cfg.steps_for(incident.severity)):
        due = page_time(cfg, incident.team, incident.severity, start + rule.after)
        if due is not None:
            timers.append(Timer(TimerKind.ESCALATION, step, due, trigger))
    return timers


def triage_timer(cfg: RulesConfig, opened_at: datetime) -> Timer:
    """A beta-tester report's triage deadline (``reports.triage_within`` after it came)."""
    return Timer(TimerKind.TRIAGE, 0, opened_at + cfg.reports.triage_within, opened_at)


def fire_triage(incident: Incident, cfg: RulesConfig, now: datetime, triaged: bool) -> Fired:
    """A report still untriaged at its deadline pages the triage rotation's on-call (the
    rules' ``reports.rotation``, else the owning team's), once."""
    if triaged or incident.status is Status.RESOLVED or incident.team not in cfg.teams:
        return Fired()
    rotation = cfg.reports.rotation
    target = f"rotation:{rotation}" if rotation else "oncall"
    pages = tuple(
        Page(person, "triage", 0)
        for person, _ in resolve_targets(cfg, incident.team, [target], now)
    )
    people = [p.person for p in pages]
    overdue = Event(
        "triage_overdue", now, {"people": people, "within": str(cfg.reports.triage_within)}
    )
    return Fired(events=(overdue,), pages=pages)


def fire(incident: Incident, timer: Timer, cfg: RulesConfig, now: datetime) -> Fired:
    """What a due timer does; nothing once the incident is resolved, acknowledged (unless
    its severity was raised after the ack), or when the timer belongs to an earlier trigger."""
    nothing = Fired()
    if incident.status is Status.RESOLVED or timer.trigger < incident.triggered_at:
        return nothing
    if incident.status is Status.ACKNOWLEDGED:
        # Acknowledged work is paged again when its severity was raised after the ack, under
        # the new policy's first step; someone is on it, so it does not escalate further.
        acked = incident.acknowledged_at
        if timer.kind is TimerKind.ACK_SLA or timer.step > 0:
            return nothing
        if acked is None or timer.trigger <= acked:
            return nothing
    if timer.kind is TimerKind.ACK_SLA:
        breached = Event("ack_sla_breached", now, {"severity": incident.severity})
        return Fired(events=(breached,), breach=True)
    steps = cfg.steps_for(incident.severity)
    if timer.step >= len(steps) or incident.team not in cfg.teams:
        return nothing
    targets = resolve_targets(cfg, incident.team, steps[timer.step].notify, now)
    pages = tuple(Page(person, target, timer.step) for person, target in targets)
    people = [p.person for p in pages]
    name = "paged" if timer.step == 0 else "escalated"
    roles = [p.target for p in pages]
    paged = Event(name, now, {"step": timer.step, "people": people, "targets": roles})
    return Fired(events=(paged,), notifications=(Kind.ESCALATED,), pages=pages)
