"""Units of work from decisions: a webhook's keys decided in turn, each change put into the
unit with its timers planned or cancelled, and ids given to the incidents it opened."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from receiver.config.models import RulesConfig
from receiver.domain import phases
from receiver.domain.delivery import Kind
from receiver.domain.escalation import Timer, TimerKind, phase_timer, plan
from receiver.domain.incidents import Change, Policy, decide_batch, decide_resolved_with
from receiver.domain.maintenance import Window, mark
from receiver.domain.model import Alert, AlertRecord, Event, Incident, Route
from receiver.domain.oncall import held_until
from receiver.domain.timeline import zone_of
from receiver.pacing import Pacer
from receiver.service.rendering import Notice
from receiver.store.base import Store, UnitOfWork


class NotFound(Exception):
    """No incident (or delivery) with that id."""


# A finished phase: (phase, severity, category, seconds it took).
Finished = tuple[str, str, str, float]


def split_parts(
    groups: dict[str, list[tuple[Alert, Route]]], size: int
) -> Iterator[dict[str, list[tuple[Alert, Route]]]]:
    """A webhook's keys in parts of about ``size`` alerts (a key's alerts stay together)."""
    part: dict[str, list[tuple[Alert, Route]]] = {}
    count = 0
    for key, batch in groups.items():
        part[key] = batch
        count += len(batch)
        if count >= size:
            yield part
            part, count = {}, 0
    if part:
        yield part


def finished(notices: Sequence[Notice]) -> list[Finished]:
    """The phases the notices' changes finished, and how long each took."""
    return [
        (phase, n.incident.severity, n.incident.category, seconds)
        for n in notices
        for phase, seconds in phases.durations(n.incident, n.change.events)
    ]


async def finished_once(store: Store, notices: Sequence[Notice]) -> list[Finished]:
    """``finished``, but a phase already ended in its incident's current cycle (acknowledged
    again after an ack was taken back) is not counted again: alert-to-ack and the phase's
    duration were observed when it first ended."""
    out: list[Finished] = []
    for notice in notices:
        done = finished([notice])
        owner = notice.incident.id
        if done and owner is not None and owner > 0:
            before = phases.ended_in_cycle(await store.timeline(owner))
            done = [f for f in done if f[0] not in before]
        out += done
    return out


def anything_due(unit: UnitOfWork) -> bool:
    """Whether a unit left anything the workers should look at before their next poll."""
    return bool(unit.timers) or any(n.coalesce_seconds == 0 for _, n in unit.outbox)


@dataclass
class IngestResult:
    """What one webhook did."""

    incidents: list[int] = field(default_factory=list)
    opened: int = 0
    duplicates: int = 0
    unknown_resolved: int = 0


def policy_of(cfg: RulesConfig) -> Policy:
    """The decision policy of a rules file.

    A severity the rules no longer name (an incident stored under older rules) ranks above
    every known one: it is never replaced automatically, since whether a known severity is
    higher or lower than it is a guess, and a lowering must never pass for a raise.
    """
    order = {name: i for i, name in enumerate(cfg.severities)}
    return Policy(cfg.jira.reopen_window, lambda sev: order.get(sev, -1))


@dataclass
class _KeyState:
    """What the decisions know about an incident key while they work through a batch."""

    latest: Incident | None
    known: dict[str, AlertRecord]


async def decide_ingest(
    routed: list[dict[str, list[tuple[Alert, Route]]]],
    latest: dict[str, Incident],
    known: dict[int, dict[str, AlertRecord]],
    cfg: RulesConfig,
    now: datetime,
    pacer: Pacer,
    windows: Sequence[Window] = (),
) -> tuple[list[tuple[IngestResult, list[int]]], UnitOfWork, list[Incident], list[Notice]]:
    """Decide every key's batch in turn; an incident opened gets a provisional id (-1,
    -2, ...) under which the unit and the notices know it until ids are reserved. A trigger
    during a maintenance window (of ``windows``) is marked with it."""
    policy = policy_of(cfg)
    states: dict[str, _KeyState] = {}
    for key, incident in latest.items():
        states[key] = _KeyState(incident, known.get(incident.id or 0, {}))
    unit = UnitOfWork()
    opened: list[Incident] = []
    notices: list[Notice] = []
    results: list[tuple[IngestResult, list[int]]] = []
    for groups in routed:
        result, touched = IngestResult(), list[int]()
        for key, batch in groups.items():
            state = states.setdefault(key, _KeyState(None, {}))
            fps = {a.fingerprint for a, _ in batch}
            decision = decide_batch(
                state.latest,
                {fp: rec for fp, rec in state.known.items() if fp in fps},
                state.latest.firing_alerts if state.latest else 0,
                batch,
                now,
                policy,
            )
            result.duplicates += decision.duplicates
            result.unknown_resolved += decision.unknown_resolved
            for change in decision.changes:
                change = mark(change, windows, cfg, now)
                incident = change.incident
                if change.is_new:
                    incident = replace(incident, id=-len(opened) - 1)
                    state.known = {}
                    opened.append(incident)
                    result.opened += 1
                state.latest = incident  # a change of the key's newest keeps its id
                collect(unit, incident, change, cfg, state.known)
                notices.append(Notice(incident, change, len(unit.events)))
                touched.append(incident.id or 0)
            if pacer.due():
                await pacer.pause()
        results.append((result, touched))
    return results, unit, opened, notices


async def assign_ids(
    unit: UnitOfWork, opened: int, reserve: Callable[[int], Awaitable[list[int]]]
) -> dict[int, int]:
    """Reserve ids for the incidents a decision opened (provisional ids -1 .. -opened)
    and renumber the unit, before anything about them is rendered; returns provisional
    id -> id. (Ids of an attempt that conflicts are not used again: one of them may be
    what the conflict was about.)"""
    if not opened:
        return {}
    ids = {-n: reserved for n, reserved in enumerate(await reserve(opened), 1)}
    unit.renumbered(ids)
    return ids


def collect(
    unit: UnitOfWork,
    incident: Incident,
    change: Change,
    cfg: RulesConfig,
    known: dict[str, AlertRecord],
) -> None:
    """Put one change into the unit of work (``incident``: the change's, under the id
    the unit knows it by) and the key's known alerts."""
    owner = incident.id
    assert owner is not None
    for record in change.alerts:
        known[record.fingerprint] = record
    unit.alerts.extend((owner, record) for record in change.alerts)
    if change.is_new:
        unit.open(incident)
    else:
        unit.put(incident)
    unit.events.extend((owner, e) for e in change.events)
    kinds = set(change.notifications)
    retriaged = Kind.TRIAGED in kinds and any(
        "severity" in e.data or "category" in e.data for e in change.events
    )
    if retriaged:  # a new severity or team: their escalation from now on
        replan(unit, incident, cfg, incident.triggered_at)
    elif kinds & {Kind.OPENED, Kind.REOPENED, Kind.SEVERITY_RAISED}:
        trigger = incident.triggered_at
        if Kind.SEVERITY_RAISED in kinds and change.events:
            raised = [e.at for e in change.events if e.event == "severity_raised"]
            trigger = max(trigger, *raised)  # page under the new policy
        held = [e for e in change.events if e.event == "maintenance" and e.data.get("held")]
        if incident.maintenance is not None and held:
            hold(unit, incident, cfg, trigger, datetime.fromisoformat(str(held[-1].data["until"])))
        else:
            replan(unit, incident, cfg, trigger)
    elif Kind.MAINTENANCE_OVER in kinds:  # its window is over: paged from now
        replan(unit, incident, cfg, change.events[-1].at)
    elif Kind.SILENCED in kinds:  # silenced in Alertmanager: held until the silence ends
        [event] = [e for e in change.events if e.event == "silenced"]
        hold(unit, incident, cfg, event.at, datetime.fromisoformat(str(event.data["until"])))
    if kinds & {Kind.ACKNOWLEDGED, Kind.MITIGATED, Kind.RESOLVED, Kind.REPORTED, Kind.LINKED}:
        unit.drop_timers(owner)
        unit.cancel(owner)
        deadline = phase_timer(incident, cfg) if Kind.LINKED not in kinds else None
        if deadline is not None:  # the next phase's clock starts
            unit.add_timers(owner, [deadline])


def replan(unit: UnitOfWork, incident: Incident, cfg: RulesConfig, trigger: datetime) -> None:
    """Replace the incident's pending timers with those of a new trigger."""
    assert incident.id is not None
    unit.drop_timers(incident.id)
    if incident.id not in unit.new:
        unit.cancel(incident.id)
    unit.add_timers(incident.id, plan(incident, cfg, trigger))
    deadline = phase_timer(incident, cfg)  # acknowledged work keeps its phase's deadline
    if deadline is not None:
        unit.add_timers(incident.id, [deadline])
    held = held_until(incident, cfg, trigger)
    if held is not None:  # said where people look: the timeline (and so the JSON)
        data = {"until": held.isoformat(), "zone": zone_of(incident, cfg).key}
        unit.events.append((incident.id, Event("pages_held", trigger, data)))


def hold(
    unit: UnitOfWork, incident: Incident, cfg: RulesConfig, trigger: datetime, until: datetime
) -> None:
    """A trigger during a maintenance window: no pages, no ack clock, until the window
    ends; then a timer releases the incident (paged then, if it is still open)."""
    assert incident.id is not None
    unit.drop_timers(incident.id)
    if incident.id not in unit.new:
        unit.cancel(incident.id)
    unit.add_timers(incident.id, [Timer(TimerKind.MAINTENANCE, 0, until, trigger)])
    data = {"until": until.isoformat(), "zone": zone_of(incident, cfg).key,
            "window": incident.maintenance}  # fmt: skip
    unit.events.append((incident.id, Event("pages_held", trigger, data)))


async def resolve_linked(
    store: Store, unit: UnitOfWork, notices: Sequence[Notice], cfg: RulesConfig, now: datetime
) -> list[Notice]:
    """Resolve, in the same unit, the open incidents linked into those the notices resolve
    (and those linked into them in turn); the notices of what it resolved."""
    done = {n.incident.id for n in notices}
    resolving = [
        i for n in notices if Kind.RESOLVED in n.change.notifications
        and (i := n.incident.id) is not None and i > 0
    ]  # fmt: skip
    more: list[Notice] = []
    while resolving:
        found = [(t, i) for t, i in await store.linked_open(resolving) if i.id not in done]
        resolving = []
        for target, incident in found:
            assert incident.id is not None
            change = decide_resolved_with(incident, target, now)
            collect(unit, change.incident, change, cfg, {})
            more.append(Notice(change.incident, change, len(unit.events)))
            done.add(incident.id)
            resolving.append(incident.id)
    return more


async def with_reports(store: Store, notices: Sequence[Notice]) -> list[Notice]:
    """The notices, those resolving a beta-tester report carrying it (its reporter is told)."""
    out: list[Notice] = []
    for n in notices:
        if (
            n.report is None
            and n.incident.source == "report"
            and (Kind.RESOLVED in n.change.notifications)
        ):
            found = await store.get_report(n.incident.id or 0, attachments=False)
            n = replace(n, report=found)
        out.append(n)
    return out
