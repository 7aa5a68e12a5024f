"""What people do to an incident besides ack, mitigate, resolve and report, as the API and
the web console ask it: a note, a reassignment, taking an ack back, escalating now, and
sending dead-lettered deliveries again.

Each action reads, decides with the pure functions of ``receiver.domain.actions``, and
commits one unit of work with the incident as read (version-checked): a concurrent ack,
another replica or a second click meanwhile makes it read and decide again, so nothing is
applied twice. Every action is on the incident's timeline with the person who took it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from receiver.domain import phases
from receiver.domain.actions import (
    clean_note,
    decide_escalate,
    decide_note,
    decide_reassign,
    decide_unack,
    retried_all,
    retried_one,
    retry_refusal,
)
from receiver.domain.escalation import Fired, Timer
from receiver.domain.incidents import Change, Reason
from receiver.domain.model import Event, Incident
from receiver.domain.oncall import page_time
from receiver.pacing import Pacer
from receiver.service.rendering import Notice, apply_fired, fire_due_now
from receiver.service.units import NotFound, collect, replan
from receiver.store.base import Delivery, UnitOfWork, until_committed

if TYPE_CHECKING:  # the service makes its IncidentActions, which act through it
    from receiver.service.incidents import IncidentService

RETRY_AT_ONCE = 500  # an incident's dead letters retried by one request, at most


@dataclass(frozen=True)
class _Decided:
    """What an action decided: the change to the incident (None: nothing to do), the pages
    and timeline entries it fires, the timers it adds, and whether it is a new trigger (its
    ladder planned again from now and step 0 fired at once)."""

    reason: Reason
    change: Change | None = None
    fired: Fired = field(default_factory=Fired)
    timers: tuple[Timer, ...] = ()
    trigger: bool = False


@dataclass(frozen=True)
class Retried:
    """An incident's dead letters sent again: the incident, and the deliveries' ids."""

    incident: Incident
    deliveries: tuple[int, ...] = ()


Decide = Callable[[Incident, list[Event], datetime], _Decided]


class IncidentActions:
    """People's actions on incidents and their deliveries; each returns the ``Reason``
    (APPLIED, ALREADY: nothing to change, CONFLICT: not for an incident in its state, see
    ``receiver.domain.actions.refusal``) and the incident as it now is. NotFound for an
    unknown id; StoreUnavailable when the store cannot commit (nothing is applied)."""

    def __init__(self, service: IncidentService) -> None:
        self.service = service
        self.store = service.store

    async def note(self, incident_id: int, by: str, text: str) -> tuple[Reason, Incident]:
        """Add ``by``'s note (``text`` as ``receiver.domain.actions.clean_note`` leaves it)
        to the timeline and as a comment on the incident's JIRA issue; on any incident,
        resolved ones too. The same note by the same person as the newest note, within
        NOTE_REPEAT, changes nothing (a retried request). ValueError, saying why, for text
        ``clean_note`` refuses (nothing is stored)."""
        text = clean_note(text)

        def decide(incident: Incident, timeline: list[Event], now: datetime) -> _Decided:
            last = next((e for e in reversed(timeline) if e.event == "note"), None)
            reason, change = decide_note(incident, by, text, now, last)
            return _Decided(reason, change)

        return await self._act(incident_id, decide, timeline=True)

    async def reassign(self, incident_id: int, by: str, to: str) -> tuple[Reason, Incident]:
        """Hand an open incident to the person ``to``: its ``assignee``, the JIRA issue's
        assignee (their ``jira_user``) with a comment, and ``to`` paged now on their
        channels as a step-0 page if its severity pages now (not a P3, nor a P2 at night).
        CONFLICT once resolved; ALREADY when ``to`` already is its assignee."""
        cfg = self.service.rules.current

        def decide(incident: Incident, timeline: list[Event], now: datetime) -> _Decided:
            known = incident.severity in cfg.severities and incident.team in cfg.teams
            when = page_time(cfg, incident.team, incident.severity, now) if known else None
            reason, change, fired = decide_reassign(incident, by, to, now, when == now)
            return _Decided(reason, change, fired)

        return await self._act(incident_id, decide)

    async def unacknowledge(self, incident_id: int, by: str) -> tuple[Reason, Incident]:
        """Take an acknowledgement back: triggered again from now (ack and mitigation
        cleared), its escalation ladder planned anew and step 0 paged at once (as its
        severity pages: held for business hours where it would be), Slack and JIRA told.
        The next ack does not observe alert-to-ack again. CONFLICT unless acknowledged."""

        def decide(incident: Incident, timeline: list[Event], now: datetime) -> _Decided:
            reason, change = decide_unack(incident, by, now)
            return _Decided(reason, change, trigger=True)

        return await self._act(incident_id, decide)

    async def escalate(
        self, incident_id: int, by: str, step: int | None = None
    ) -> tuple[Reason, Incident]:
        """Page the next step of the escalation ladder (after the last one paged) now; the
        later steps follow with their spacing from now while the incident is triggered.
        Triggered or acknowledged incidents; CONFLICT once resolved or past the last step.
        ``step``: the step the person meant (the one they saw as next): ALREADY once it is
        paged, so a double click or a retried request climbs one step, not two."""
        cfg = self.service.rules.current

        def decide(incident: Incident, timeline: list[Event], now: datetime) -> _Decided:
            paged = phases.paged_steps(timeline, incident.triggered_at)
            reason, done = decide_escalate(incident, cfg, paged, by, now, step)
            if done is None:
                return _Decided(reason)
            return _Decided(reason, Change(incident), done.fired, done.timers)

        return await self._act(incident_id, decide, timeline=True)

    async def retry_delivery(self, delivery_id: int, by: str) -> tuple[Reason, Delivery]:
        """Send a dead-lettered delivery again: pending, its attempts at 0, due now (its
        max-age clock restarting; its last error kept until the next attempt); on its
        incident's timeline. CONFLICT (``retry_refusal`` says why) for a row that is not
        dead, or a page whose incident no longer waits for an ack in its trigger."""

        async def attempt() -> tuple[Reason, Delivery, bool]:
            now = self.service.clock()
            found = await self.store.get_delivery(delivery_id)
            if found is None:
                raise NotFound(delivery_id)
            owner = found.incident_id
            incident = await self.store.get_incident(owner) if owner is not None else None
            if retry_refusal(found.status, found.kind, found.page, incident) is not None:
                return Reason.CONFLICT, found, False
            # The incident as read, version-checked: an ack or resolve meanwhile decides again.
            unit = UnitOfWork([incident] if incident is not None else (), retried=[delivery_id])
            if incident is not None and incident.id is not None:
                unit.events.append((incident.id, retried_one(by, delivery_id, found.channel, now)))
            await self.store.commit(unit, now)
            again = replace(found, status="pending", attempts=0, created_at=now,
                            next_attempt_at=now, done_at=None)  # fmt: skip
            return Reason.APPLIED, again, True

        reason, delivery, changed = await until_committed(attempt)
        if changed:
            self.service.on_commit()
        return reason, delivery

    async def retry_dead(self, incident_id: int, by: str) -> tuple[Reason, Retried]:
        """Send every dead letter of an incident again at once (up to RETRY_AT_ONCE, but no
        page ``retry_refusal`` keeps back), with one timeline entry: the reason (ALREADY
        when there was none), and the incident with the ids of the deliveries retried."""

        async def attempt() -> tuple[Reason, Incident, list[int]]:
            now = self.service.clock()
            incident = await self.store.get_incident(incident_id)
            if incident is None:
                raise NotFound(incident_id)
            dead = await self.store.deliveries("dead", incident_id, RETRY_AT_ONCE)
            ids = sorted(
                d.id for d in dead if retry_refusal(d.status, d.kind, d.page, incident) is None
            )
            if not ids:
                return Reason.ALREADY, incident, []
            unit = UnitOfWork([incident], retried=ids)  # version-checked, as read
            unit.events.append((incident_id, retried_all(by, ids, now)))
            await self.store.commit(unit, now)
            return Reason.APPLIED, incident, ids

        reason, incident, ids = await until_committed(attempt)
        if ids:
            self.service.on_commit()
        return reason, Retried(incident, tuple(ids))

    async def _act(
        self, incident_id: int, decide: Decide, timeline: bool = False
    ) -> tuple[Reason, Incident]:
        """Read the incident (and its timeline, if the decision reads it), decide, and
        commit the change, the pages it fires and its instructions in one unit of work."""
        service = self.service
        cfg = service.rules.current

        async def attempt() -> tuple[Reason, Incident, list[tuple[str, int]] | None]:
            now = service.clock()
            incident = await self.store.get_incident(incident_id)
            if incident is None:
                raise NotFound(incident_id)
            events = await self.store.timeline(incident_id) if timeline else []
            decided = decide(incident, events, now)
            change = decided.change
            if change is None:
                return decided.reason, incident, None
            unit = UnitOfWork()
            collect(unit, change.incident, change, cfg, {})
            if decided.trigger:  # a new trigger: its ladder from now
                replan(unit, change.incident, cfg, now)
            unit.add_timers(incident_id, decided.timers)
            ctx = await service.context()
            notice = Notice(change.incident, change, len(unit.events))
            await service.render_notice(unit, notice, cfg, ctx)
            fired, alert = decided.fired, None
            if fired.pages or decided.trigger:  # what the pages tell: one of its alerts
                found = await self.store.incident_alerts([incident_id], 1)
                alert = next(iter(found.get(incident_id, [])), None)
            apply_fired(unit, change.incident, fired, cfg, ctx, now, alert, now)
            paged = [(incident.severity, p.step) for p in fired.pages[:1] if fired.events]
            briefs = {incident_id: alert} if alert is not None else None
            paged += await fire_due_now(unit, cfg, ctx, now, Pacer(), briefs)
            await self.store.commit(unit, now)
            return decided.reason, change.incident, paged

        reason, incident, paged = await until_committed(attempt)
        if paged is not None:
            for severity, step in paged:
                service.metrics.escalations.labels(severity, str(step)).inc()
            service.on_commit()
        return reason, incident
