"""The application layer: route, decide, store in one transaction, then count and wake."""

from __future__ import annotations

import pickle
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from receiver.config.models import RulesConfig
from receiver.domain import heartbeats, phases
from receiver.domain.escalation import Timer, TimerKind, after_breach, fire, fire_triage
from receiver.domain.incidents import (
    Change,
    Reason,
    decide_ack,
    decide_link,
    decide_mitigate,
    decide_report,
    decide_resolve,
    decide_triage,
)
from receiver.domain.model import Alert, AlertStatus, Event, Incident, Route
from receiver.metrics import Metrics
from receiver.pacing import Pacer
from receiver.service.actions import IncidentActions
from receiver.service.maintenance import Maintenance, windows_at
from receiver.service.paging import PageFallback
from receiver.service.rendering import Context, Notice, apply_fired, fire_due_now, render
from receiver.service.rules import RulesHolder
from receiver.service.units import (
    Finished,
    IngestResult,
    NotFound,
    anything_due,
    assign_ids,
    collect,
    decide_ingest,
    finished,
    finished_once,
    resolve_linked,
    split_parts,
    with_reports,
)
from receiver.store.base import Conflict, Store, UnitOfWork, until_committed

ROUTE_SLICE = 256  # alerts routed between two looks at the clock (a few ms when none is cached)


# What an ingest returns: each webhook's answer, the incidents opened by (severity,
# category), the (severity, step) of each page sent at once, whether anything is due now,
# and the phases the alerts finished (an incident resolving).
_Ingested = tuple[
    list[IngestResult], Counter[tuple[str, str]], list[tuple[str, int]], bool, list[Finished]
]
# A webhook of at least this many alerts is decided and written this many at a time (a
# part's unit of work is set aside, and read back, in about 50 ms).
PART_ALERTS = 1_000


class IncidentService:
    """Turns alerts and manual actions into stored incidents and outbox rows.

    Every operation reads, decides with pure functions, and commits one unit of work; if
    what it read changed before the commit (another replica, a concurrent ack), the store
    raises Conflict and the operation decides again on fresh state.
    """

    def __init__(
        self,
        store: Store,
        rules: RulesHolder,
        metrics: Metrics,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None] = lambda: None,
        coalesce_seconds: float = 60.0,
        jira_url: str | None = None,
        part_alerts: int = PART_ALERTS,
        public_url: str | None = None,
    ) -> None:
        self.coalesce_seconds = coalesce_seconds
        self.part_alerts = part_alerts
        self.jira_url = jira_url  # where pages link the incident's issue
        self.public_url = public_url  # where pages link the incident itself
        self._ctx: Context | None = None
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.clock = clock
        self.on_commit = on_commit
        self.maintenance = Maintenance(self)
        self.actions = IncidentActions(self)  # note, reassign, unack, escalate, retry
        self.paging = PageFallback(store, rules, clock, self.context, lambda: self.on_commit())

    async def ingest(self, alerts: Sequence[Alert]) -> IngestResult:
        """Apply one webhook's alerts atomically."""
        return (await self.ingest_many([alerts]))[0]

    async def ingest_many(self, webhooks: Sequence[Sequence[Alert]]) -> list[IngestResult]:
        """Apply several webhooks, in order, in one transaction (one commit for all)."""
        cfg, router = self.rules.current, self.rules.router
        signs = heartbeats.signs(cfg) if cfg.heartbeats else None
        seen: dict[str, datetime] = {}  # heartbeats alive: signs of life open no incident
        received = self.clock()
        pacer = Pacer()  # a webhook of 100,000 alerts must not hold the loop while it is done
        routed: list[dict[str, list[tuple[Alert, Route]]]] = []
        total = firing = 0
        for alerts in webhooks:
            groups: dict[str, list[tuple[Alert, Route]]] = defaultdict(list)
            for start in range(0, len(alerts), ROUTE_SLICE):
                for alert in alerts[start : start + ROUTE_SLICE]:
                    firing += alert.status is AlertStatus.FIRING
                    alive = signs.of(alert.labels) if signs is not None else None
                    if alive is not None:  # a sign of life: no incident
                        if alert.status is AlertStatus.FIRING:
                            seen[alive] = received
                        continue
                    r = router.route(alert.labels)
                    groups[r.key].append((alert, r))
                if pacer.due():
                    await pacer.pause()
            total += len(alerts)
            routed.append(groups)
        ctx = await self.context()
        if len(routed) == 1 and total >= self.part_alerts:
            outcome = await until_committed(lambda: self._in_parts(routed[0], cfg, ctx, pacer))
        else:
            outcome = await until_committed(lambda: self._at_once(routed, cfg, ctx, pacer))
        answers, opened, paged, due_now, done = outcome
        await self.store.heartbeats_seen(seen)  # once what came with them is committed
        self.observe(done)
        for status, count in ((AlertStatus.FIRING, firing), (AlertStatus.RESOLVED, total - firing)):
            if count:
                self.metrics.alerts_received.labels(status.value).inc(count)
        for (severity, category), count in opened.items():
            self.metrics.incidents_opened.labels(severity, category).inc(count)
        for (severity, step), count in Counter(paged).items():
            self.metrics.escalations.labels(severity, str(step)).inc(count)
        self.metrics.duplicates_suppressed.inc(sum(r.duplicates for r in answers))
        self.metrics.unknown_resolved.inc(sum(r.unknown_resolved for r in answers))
        if due_now:
            self.on_commit()  # else nothing is due before the workers' next poll
        return answers

    async def _at_once(
        self,
        routed: list[dict[str, list[tuple[Alert, Route]]]],
        cfg: RulesConfig,
        ctx: Context,
        pacer: Pacer,
    ) -> _Ingested:
        """Read, decide, render and commit webhooks in one unit of work."""
        now = self.clock()
        results, unit, opened, paged, done = await self._unit_of(routed, cfg, ctx, now, pacer)
        await self.store.commit(unit, now)
        for result, touched in results:
            result.incidents = list(dict.fromkeys(touched))
        counts = Counter((i.severity, i.category) for i in opened)
        return [r for r, _ in results], counts, paged, anything_due(unit), done

    async def _in_parts(
        self,
        groups: dict[str, list[tuple[Alert, Route]]],
        cfg: RulesConfig,
        ctx: Context,
        pacer: Pacer,
    ) -> _Ingested:
        """One big webhook, read, decided and rendered a part of its keys at a time, each
        part's unit of work set aside in a temporary file, then all of them written in one
        transaction: what memory holds at once is one part, whatever the webhook's size,
        and the store is held only while the parts are written."""
        now = self.clock()
        answer = IngestResult()
        ids: list[int] = []
        opened_counts: Counter[tuple[str, str]] = Counter()
        paged: list[tuple[str, int]] = []
        done: list[Finished] = []
        due_now = False
        with tempfile.TemporaryFile(prefix="receiver-ingest-") as spill:
            parts = 0
            for part in split_parts(groups, self.part_alerts):
                [(result, touched)], unit, opened, fired, ended = await self._unit_of(
                    [part], cfg, ctx, now, pacer
                )
                paged += fired
                done += ended
                pickle.dump(unit, spill, protocol=pickle.HIGHEST_PROTOCOL)
                parts += 1
                answer.opened += result.opened
                answer.duplicates += result.duplicates
                answer.unknown_resolved += result.unknown_resolved
                ids += touched
                opened_counts.update((i.severity, i.category) for i in opened)
                due_now = due_now or anything_due(unit)
                del unit, opened, touched  # set aside: let go
                await pacer.pause()
            spill.seek(0)
            async with self.store.write_in_parts(now) as tx:
                for _ in range(parts):
                    await tx.write(pickle.load(spill))  # our own file, written just now
                    if pacer.due():
                        await pacer.pause()
        answer.incidents = list(dict.fromkeys(ids))
        return [answer], opened_counts, paged, due_now, done

    async def _unit_of(
        self,
        routed: list[dict[str, list[tuple[Alert, Route]]]],
        cfg: RulesConfig,
        ctx: Context,
        now: datetime,
        pacer: Pacer,
    ) -> tuple[
        list[tuple[IngestResult, list[int]]],
        UnitOfWork,
        list[Incident],
        list[tuple[str, int]],
        list[Finished],
    ]:
        """Read what webhooks' keys have, decide, give new incidents their ids, render the
        instructions and fire the steps due at once: the unit of work to write, with each
        webhook's answer and incidents, the incidents opened, the steps that paged and the
        phases finished."""
        wanted: dict[str, list[str]] = defaultdict(list)
        for groups in routed:
            for key, batch in groups.items():
                wanted[key].extend(alert.fingerprint for alert, _ in batch)
        latest, known = await self.store.ingest_state(wanted)
        windows = await windows_at(self.store, cfg, now)
        results, unit, opened, notices = await decide_ingest(
            routed, latest, known, cfg, now, pacer, windows
        )
        notices += await resolve_linked(self.store, unit, notices, cfg, now)
        notices = await with_reports(self.store, notices)
        ids = await assign_ids(unit, len(opened), self.store.reserve_incident_ids)
        results = [(result, [ids.get(i, i) for i in touched]) for result, touched in results]
        for notice in notices:
            if notice.incident.id in ids:
                notice = replace(
                    notice, incident=replace(notice.incident, id=ids[notice.incident.id])
                )
            await self.render_notice(unit, notice, cfg, ctx)
            if pacer.due():
                await pacer.pause()
        paged = await fire_due_now(unit, cfg, ctx, now, pacer)
        return results, unit, opened, paged, finished(notices)

    async def context(self) -> Context:
        """What rendering needs from outside the rules (the installation id, read once)."""
        if self._ctx is None:
            self._ctx = Context(await self.store.installation_id(), self.jira_url, self.public_url)
        return self._ctx

    async def render_notice(
        self, unit: UnitOfWork, notice: Notice, cfg: RulesConfig, ctx: Context
    ) -> None:
        await render(unit, notice, cfg, ctx, self.coalesce_seconds, self.store.timeline)

    async def fire_due_timers(self, lease_seconds: float = 120.0, limit: int = 100) -> int:
        """Fire every due timer once: pages, escalation comments, SLA breaches."""
        cfg = self.rules.current
        timers = await self.store.claim_timers(self.clock(), limit, lease_seconds)
        for timer in timers:
            await self._fire(timer, cfg)
        return len(timers)

    async def _fire(self, timer: Timer, cfg: RulesConfig) -> None:
        assert timer.id is not None and timer.incident_id is not None
        now = self.clock()
        incident = await self.store.get_incident(timer.incident_id)
        if incident is None:
            return
        if timer.kind is TimerKind.MAINTENANCE:
            return await self.maintenance.release(timer, incident, cfg)
        if timer.kind is TimerKind.PAGE_RETRY:  # pages not acked move to the next channel
            return await self.paging.retry(timer)
        if timer.kind is TimerKind.TRIAGE:
            triaged = any(e.event == "triaged" for e in await self.store.timeline(incident.id or 0))
            fired = fire_triage(incident, cfg, now, triaged)
        else:  # which steps this ladder paged: a phase's breach may have brought one forward
            timeline = await self.store.timeline(incident.id or 0)
            fired = fire(incident, timer, cfg, now, phases.paged_steps(timeline, timer.trigger))
        unit = UnitOfWork(fired_timers=[timer.id])
        following = after_breach(incident, cfg, fired.phase_breach) if fired.phase_breach else None
        if following is not None:  # the next phase's clock runs from the missed deadline
            unit.add_timers(timer.incident_id, [following])
        alert = None
        if fired.pages:
            found = await self.store.incident_alerts([timer.incident_id], 1)
            alert = next(iter(found.get(timer.incident_id, [])), None)
        apply_fired(unit, incident, fired, cfg, await self.context(), timer.due_at, alert, now)
        try:
            await self.store.commit(unit, now)
        except Conflict:
            return  # cancelled by an ack or resolve, or fired by another replica, meanwhile
        step = timer.step if fired.escalated_step is None else fired.escalated_step
        if fired.pages:
            self.metrics.escalations.labels(incident.severity, str(step)).inc()
        if fired.breach:
            self.metrics.ack_sla_breaches.labels(incident.severity).inc()
        if fired.phase_breach is not None:
            self.metrics.phase_sla_breaches.labels(fired.phase_breach, incident.severity).inc()
        if unit.outbox:
            self.on_commit()

    async def _manual(
        self,
        incident_id: int,
        by: str,
        decide: Callable[[Incident, str, datetime], tuple[Reason, Change | None]],
    ) -> tuple[Reason, Incident]:
        cfg = self.rules.current

        async def attempt() -> tuple[Reason, Incident, list[Finished] | None]:
            now = self.clock()
            incident = await self.store.get_incident(incident_id)
            if incident is None:
                raise NotFound(incident_id)
            reason, change = decide(incident, by, now)
            if change is None:
                return reason, incident, None
            unit = UnitOfWork()
            collect(unit, change.incident, change, cfg, {})
            notices = [Notice(change.incident, change, len(unit.events))]
            notices += await resolve_linked(self.store, unit, notices, cfg, now)
            notices = await with_reports(self.store, notices)
            ctx = await self.context()
            for notice in notices:
                await self.render_notice(unit, notice, cfg, ctx)
            done = await finished_once(self.store, notices)  # once per cycle, after an unack
            await self.store.commit(unit, now)
            return reason, change.incident, done

        reason, incident, done = await until_committed(attempt)
        if done is not None:
            self.observe(done)
            self.on_commit()
        return reason, incident

    def observe(self, done: Sequence[Finished]) -> None:
        """Count the phases a commit finished: their durations, and alert-to-ack."""
        for phase, severity, category, seconds in done:
            self.metrics.phase_duration.labels(phase, severity, category).observe(seconds)
            if phase == "ack":
                self.metrics.alert_to_ack.labels(severity, category).observe(seconds)

    async def link(self, incident_id: int, target_id: int, by: str) -> tuple[Reason, Incident]:
        """Link a beta-tester report into another incident: resolved with it."""
        cfg = self.rules.current

        async def attempt() -> tuple[Reason, Incident, bool]:
            now = self.clock()
            incident = await self.store.get_incident(incident_id)
            target = await self.store.get_incident(target_id)
            if incident is None:
                raise NotFound(incident_id)
            if target is None:
                raise NotFound(target_id)
            current = await self.store.link_of(incident_id)
            reason, change = decide_link(incident, target, current, by, now)
            if change is None:
                return reason, incident, False
            unit = UnitOfWork(links=[(incident_id, target_id, by)])
            collect(unit, incident, change, cfg, {})
            note = Event("report_linked", now, {"report": incident_id, "by": by})
            unit.events.append((target_id, note))
            notice = Notice(incident, change, len(unit.events))
            await self.render_notice(unit, notice, cfg, await self.context())
            await self.store.commit(unit, now)
            return reason, incident, True

        reason, incident, changed = await until_committed(attempt)
        if changed:
            self.on_commit()
        return reason, incident

    async def acknowledge(self, incident_id: int, by: str) -> tuple[Reason, Incident]:
        """Acknowledge by hand; observes alert-to-ack once, on the first ack."""
        return await self._manual(incident_id, by, decide_ack)

    async def mitigate(self, incident_id: int, by: str) -> tuple[Reason, Incident]:
        """Mark mitigated by hand (acknowledging it too, if nobody had)."""
        return await self._manual(incident_id, by, decide_mitigate)

    async def report(self, incident_id: int, by: str) -> tuple[Reason, Incident]:
        """Mark a resolved incident's postmortem written."""
        return await self._manual(incident_id, by, decide_report)

    async def triage(
        self,
        incident_id: int,
        by: str,
        severity: str | None = None,
        category: str | None = None,
        assignee: str | None = None,
    ) -> tuple[Reason, Incident]:
        """Triage a beta-tester report (severity, category and its team, assignee)."""
        cfg = self.rules.current
        team = cfg.categories[category].team if category in cfg.categories else None

        def decide(incident: Incident, who: str, now: datetime) -> tuple[Reason, Change | None]:
            return decide_triage(
                incident, who, now, severity=severity, category=category, team=team,
                assignee=assignee,
            )  # fmt: skip

        return await self._manual(incident_id, by, decide)

    async def resolve(self, incident_id: int, by: str) -> tuple[Reason, Incident]:
        """Resolve by hand."""
        return await self._manual(incident_id, by, decide_resolve)

    async def refresh_gauges(self) -> None:
        """Recompute the gauges that describe stored state."""
        cfg = self.rules.current
        self.metrics.set_open(await self.store.open_counts(), list(cfg.severities))
        pending, oldest = await self.store.outbox_stats(self.clock())
        self.metrics.outbox_pending.set(pending)
        self.metrics.outbox_oldest.set(oldest)
        self.metrics.reports_untriaged.set(await self.store.untriaged_reports())
