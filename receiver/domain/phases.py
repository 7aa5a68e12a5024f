"""An incident's phases and their deadlines: acknowledge, mitigate, resolve, report.

Each phase a severity gives a target is measured from the end of the phase before it (the
ack from the incident's trigger, the ack timeout's clock). A phase not begun yet counts
from its predecessor's deadline, the latest the plan lets it begin, so the incident JSON
can show every deadline ahead; it moves earlier when the phase before ends early. Pure
functions: the clock and the rules are arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from receiver.config.models import PHASES, PhaseTargets, RulesConfig
from receiver.domain.model import Event, Incident, Status

# The timeline entry that ends each phase.
ENDED_BY = {"acknowledged": "ack", "mitigated": "mitigate", "resolved": "resolve",
            "reported": "report"}  # fmt: skip


def targets(cfg: RulesConfig, severity: str) -> PhaseTargets | None:
    """The severity's phase targets (None: its phases have no deadlines)."""
    policy = cfg.severities.get(severity)
    return policy.phases if policy is not None else None


def ends(incident: Incident) -> dict[str, datetime | None]:
    """When each phase of the current cycle ended (None: not yet)."""
    return {
        "ack": incident.acknowledged_at,
        "mitigate": incident.mitigated_at,
        "resolve": incident.resolved_at,
        "report": incident.reported_at,
    }


def deadlines(incident: Incident, cfg: RulesConfig) -> dict[str, datetime]:
    """Each phase's deadline in the current cycle, for the phases with a target."""
    found = targets(cfg, incident.severity)
    if found is None:
        return {}
    out: dict[str, datetime] = {}
    done = ends(incident)
    start = incident.triggered_at
    for phase in PHASES:
        target = found.of(phase)
        if target is not None:
            out[phase] = start + target
        end = done[phase]
        start = end if end is not None else out.get(phase, start)
    return out


def ahead(incident: Incident, cfg: RulesConfig) -> dict[str, datetime]:
    """The deadlines of the phases still ahead: those not ended, and once resolved only the
    report (a phase an incident resolved without is past, not ahead)."""
    done = ends(incident)
    resolved = incident.status is Status.RESOLVED
    return {
        phase: at
        for phase, at in deadlines(incident, cfg).items()
        if done[phase] is None and (phase == "report" or not resolved)
    }


def current(incident: Incident) -> str | None:
    """The phase the incident is in (None: all done)."""
    done = ends(incident)
    if incident.status is Status.RESOLVED:
        return "report" if done["report"] is None else None
    if done["ack"] is None:
        return "ack"
    return "mitigate" if done["mitigate"] is None else "resolve"


def overdue(incident: Incident, cfg: RulesConfig, now: datetime) -> list[tuple[str, datetime]]:
    """The phases ahead whose deadline has passed, with it (the report's only once
    resolved: before, its lateness is the resolve's)."""
    resolved = incident.status is Status.RESOLVED
    return [
        (phase, at)
        for phase, at in ahead(incident, cfg).items()
        if at < now and (resolved or phase != "report")
    ]


def next_deadline(incident: Incident, cfg: RulesConfig) -> tuple[str, datetime] | None:
    """The phase the incident is in and its deadline, if it has one (what a stored timer
    waits for; the ack's is the ack timeout's own timer)."""
    phase = current(incident)
    if phase is None:
        return None
    at = ahead(incident, cfg).get(phase)
    return (phase, at) if at is not None else None


def _start(incident: Incident, phase: str) -> datetime:
    """Where a phase's duration counts from: the latest earlier phase that ended, else the
    first alert (the ack counts from it, as alert-to-ack does)."""
    done = ends(incident)
    earlier = PHASES[: PHASES.index(phase)]
    found = [at for p in earlier if (at := done[p]) is not None]
    return max(found) if found else incident.first_starts_at


def durations(incident: Incident, events: Iterable[Event]) -> list[tuple[str, float]]:
    """How long each phase a change's events ended took (seconds), as the change left the
    incident: what ``receiver_phase_duration_seconds`` observes."""
    done = ends(incident)
    out: list[tuple[str, float]] = []
    for event in events:
        phase = ENDED_BY.get(event.event)
        end = done.get(phase) if phase else None
        if phase is None or end is None or any(p == phase for p, _ in out):
            continue
        out.append((phase, max(0.0, (end - _start(incident, phase)).total_seconds())))
    return out


@dataclass(frozen=True)
class Row:
    """One phase against its target, as the postmortem and the timeline show it."""

    phase: str
    target: timedelta | None
    deadline: datetime | None
    ended: datetime | None
    took: timedelta | None
    # met, missed, skipped (a later phase ended without it), ahead, overdue, waiting (for
    # the phase before to begin it: the report, for the resolve), - (no target)
    verdict: str


def table(incident: Incident, cfg: RulesConfig, now: datetime) -> list[Row]:
    """Every phase of the current cycle against its target."""
    found = targets(cfg, incident.severity)
    due = deadlines(incident, cfg)
    done = ends(incident)
    rows: list[Row] = []
    for i, phase in enumerate(PHASES):
        target = found.of(phase) if found is not None else None
        deadline, end = due.get(phase), done[phase]
        later = any(done[p] is not None for p in PHASES[i + 1 :])
        took = end - _start(incident, phase) if end is not None else None
        if deadline is None:
            verdict = "-"
        elif end is not None:
            verdict = "met" if end <= deadline else "missed"
        elif later or (incident.status is Status.RESOLVED and phase != "report"):
            verdict = "missed" if _passed(deadline, done, phase) else "skipped"
        elif phase == "report" and incident.status is not Status.RESOLVED:
            verdict = "waiting"  # begins with the resolve; its lateness is the resolve's
        else:
            verdict = "overdue" if now > deadline else "ahead"
        rows.append(Row(phase, target, deadline, end, took, verdict))
    return rows


def _passed(deadline: datetime, done: dict[str, datetime | None], phase: str) -> bool:
    """Whether a phase skipped was already late when a later phase ended."""
    later = [at for p in PHASES[PHASES.index(phase) + 1 :] if (at := done[p]) is not None]
    return bool(later) and min(later) > deadline


def ended_in_cycle(timeline: Sequence[Event]) -> set[str]:
    """The phases the timeline says ended in the current cycle (since the latest open or
    reopen): one ended again after an ack was taken back is not observed a second time."""
    start = max((i for i, e in enumerate(timeline) if e.event in ("opened", "reopened")),
                default=0)  # fmt: skip
    return {ENDED_BY[e.event] for e in timeline[start:] if e.event in ENDED_BY}


def paged_steps(timeline: Sequence[Event], since: datetime) -> set[int]:
    """The escalation steps paged in the ladder running since the trigger ``since`` (or
    since a later severity raise or triage, which starts the ladder again): by their own
    timers, or brought forward by a phase's deadline passing."""
    restarts = [
        e.at for e in timeline
        if e.event == "severity_raised"
        or (e.event == "triaged" and ("severity" in e.data or "category" in e.data))
    ]  # fmt: skip
    start = max([since, *restarts])
    names = ("paged", "escalated", "phase_overdue")
    return {
        int(e.data["step"])
        for e in timeline
        if e.event in names and e.at >= start and isinstance(e.data.get("step"), int)
    }
