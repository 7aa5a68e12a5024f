"""Escalation as stored timers: what to schedule when an incident triggers, and what a due
timer does. Pure functions; the clock and the rules are arguments.

A timer belongs to one *trigger* of an incident (its open, a reopen, or a severity raise),
named by that moment; acknowledging or resolving cancels what is left of it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from receiver.config.durations import format_duration
from receiver.config.models import PHASES, RulesConfig
from receiver.domain import phases
from receiver.domain.delivery import Kind
from receiver.domain.model import Event, Incident, Status
from receiver.domain.oncall import page_time, resolve_targets


class TimerKind(enum.StrEnum):
    """What a timer is for."""

    ESCALATION = "escalation"  # page the step's targets
    ACK_SLA = "ack_sla"  # count a breach if nobody acknowledged by then
    TRIAGE = "triage"  # page the triage rotation if a report is still untriaged by then
    PHASE = "phase"  # a phase's deadline (step: its index in PHASES) passing unfinished
    MAINTENANCE = "maintenance"  # the end of the maintenance window holding its pages
    PAGE_RETRY = "page_retry"  # pages not acked by then move to the next channel (fallback)


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
    attempt: int = 0  # which of the person's channels (``notify``) it goes to


@dataclass(frozen=True)
class Fired:
    """What a due timer does to its incident."""

    events: tuple[Event, ...] = ()
    notifications: tuple[str, ...] = ()
    pages: tuple[Page, ...] = ()
    breach: bool = False
    phase_breach: str | None = None  # the phase whose deadline passed unfinished
    escalated_step: int | None = None  # the escalation step a phase's breach paged


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


def phase_timer(incident: Incident, cfg: RulesConfig) -> Timer | None:
    """The deadline timer of the phase the incident is now in, past the ack (whose
    deadline is the ack timeout's own timer); None when that phase has no target."""
    found = phases.next_deadline(incident, cfg)
    if found is None or found[0] == "ack":
        return None
    phase, due = found
    return Timer(TimerKind.PHASE, PHASES.index(phase), due, incident.triggered_at)


def after_breach(incident: Incident, cfg: RulesConfig, phase: str) -> Timer | None:
    """A phase left unfinished past its deadline: the next phase's timer, at the deadline
    it has counting from that one (the resolution's while it is still open; the report's
    waits for the resolve)."""
    due = phases.deadlines(incident, cfg)
    for later in PHASES[PHASES.index(phase) + 1 :]:
        if later == "report" and incident.status is not Status.RESOLVED:
            return None
        if later in due:
            return Timer(TimerKind.PHASE, PHASES.index(later), due[later], incident.triggered_at)
    return None


def owner(incident: Incident, cfg: RulesConfig, now: datetime) -> list[str]:
    """Who a phase's deadline reminds: whoever took the incident on (mitigated,
    acknowledged or resolved it), if the rules know them, else the team's on-call."""
    for who in (incident.mitigated_by, incident.acknowledged_by, incident.resolved_by):
        if who in cfg.people:
            return [who]
        found = next((pid for pid, p in cfg.people.items() if who and p.slack_id == who), None)
        if found is not None:
            return [found]
    if incident.team not in cfg.teams:
        return []
    return [person for person, _ in resolve_targets(cfg, incident.team, ["oncall"], now)]


def overdue_phase(
    incident: Incident, phase: str, cfg: RulesConfig, now: datetime, paged: set[int]
) -> Fired:
    """A phase past its deadline: on the timeline, a reminder to the owner, and one step
    up the ladder (the step after the highest paged in this trigger; past its end, the last
    step again), counted as a breach of the phase."""
    deadline = phases.deadlines(incident, cfg).get(phase)
    found = phases.targets(cfg, incident.severity)
    target = found.of(phase) if found is not None else None
    if deadline is None or target is None or incident.team not in cfg.teams:
        return Fired()
    reminded = owner(incident, cfg, now)
    steps = cfg.steps_for(incident.severity)
    step = min(max(paged, default=-1) + 1, len(steps) - 1) if steps else None
    if page_time(cfg, incident.team, incident.severity, deadline) != deadline:
        # a deadline passing while pages are held (business hours) or never sent is noted
        # only: the held pages themselves go out when paging may start
        reminded, step = [], None
    pages = [Page(person, "owner", step or 0) for person in reminded]
    if step is not None:
        for person, role in resolve_targets(cfg, incident.team, steps[step].notify, now):
            if all(person != p.person for p in pages):
                pages.append(Page(person, role, step))
    data = {
        "phase": phase,
        "target": format_duration(target),
        "deadline": deadline.isoformat(),
        "owner": reminded,
        "step": step,
        "people": [p.person for p in pages],
    }
    return Fired(
        events=(Event("phase_overdue", now, data),),
        notifications=(Kind.PHASE_OVERDUE,),
        pages=tuple(pages),
        phase_breach=phase,
        escalated_step=step,
    )


def fire_phase(
    incident: Incident, timer: Timer, cfg: RulesConfig, now: datetime, paged: set[int]
) -> Fired:
    """A phase's deadline timer: a breach if its phase of this trigger is still unfinished
    (the mitigation and resolution while the incident is open, the report once resolved)."""
    if timer.trigger < incident.triggered_at or not 0 <= timer.step < len(PHASES):
        return Fired()
    phase = PHASES[timer.step]
    if phases.ends(incident)[phase] is not None:
        return Fired()
    if (phase == "report") != (incident.status is Status.RESOLVED):
        return Fired()
    return overdue_phase(incident, phase, cfg, now, paged)


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


def fire(
    incident: Incident,
    timer: Timer,
    cfg: RulesConfig,
    now: datetime,
    paged: set[int] | None = None,
) -> Fired:
    """What a due timer does; nothing once the incident is resolved, acknowledged (unless
    its severity was raised after the ack), or when the timer belongs to an earlier trigger.
    ``paged``: the escalation steps this trigger has paged (a step brought forward by a
    phase's breach is not paged again by its own timer)."""
    nothing = Fired()
    paged = paged or set()
    if timer.kind is TimerKind.PAGE_RETRY:
        return nothing  # moved on by receiver.domain.fallback, which reads the timeline
    if timer.kind is TimerKind.PHASE:
        return fire_phase(incident, timer, cfg, now, paged)
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
        late = overdue_phase(incident, "ack", cfg, now, paged)  # with ack phase targets
        return replace(late, events=(breached, *late.events), breach=True)
    steps = cfg.steps_for(incident.severity)
    if timer.step >= len(steps) or incident.team not in cfg.teams or timer.step in paged:
        return nothing
    targets = resolve_targets(cfg, incident.team, steps[timer.step].notify, now)
    pages = tuple(Page(person, target, timer.step) for person, target in targets)
    people = [p.person for p in pages]
    name = "paged" if timer.step == 0 else "escalated"
    roles = [p.target for p in pages]
    event = Event(name, now, {"step": timer.step, "people": people, "targets": roles})
    return Fired(events=(event,), notifications=(Kind.ESCALATED,), pages=pages)
