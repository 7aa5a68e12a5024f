"""Beta-tester reports filed as incidents: rate-limited, folded when the same reporter sends
the same title again, triaged, and committed with the report, its JIRA issue, its Slack post
and its pages in one unit of work. Every intake (the HTTP API, e-mail, Telegram) files here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from receiver.config.models import RulesConfig
from receiver.domain import instructions, reporter_notice
from receiver.domain.delivery import Channel, Kind
from receiver.domain.escalation import triage_timer
from receiver.domain.incidents import Change
from receiver.domain.jira_render import cut, one_line
from receiver.domain.model import Event, Incident, Status
from receiver.domain.ratelimit import SlidingWindow
from receiver.domain.reports import (
    Attachment,
    FiledReport,
    Report,
    dedup_key,
    reference,
    triage,
)
from receiver.domain.timeline import zone_of
from receiver.metrics import Metrics
from receiver.pacing import Pacer
from receiver.service.incidents import IncidentService
from receiver.service.rendering import Notice, fire_due_now, render
from receiver.service.rules import RulesHolder
from receiver.service.units import collect
from receiver.store.base import (
    MailTaken,
    NewNotification,
    Store,
    UnitOfWork,
    until_committed,
)

SUMMARY_CHARS = 200


@dataclass(frozen=True)
class Filed:
    """What the reporter is answered: the incident, the reference to quote, its status,
    and whether it was a report already filed (the same reporter and title, lately)."""

    id: int
    reference: str
    status: str
    duplicate: bool = False


class MailTakenAlready(Exception):
    """The e-mail was taken by another replica (or an earlier run) meanwhile."""


class RateLimited(Exception):
    """Too many reports from one client or reporter; try again after ``retry_after``."""

    def __init__(self, retry_after: float, what: str) -> None:
        super().__init__(f"too many reports from this {what}; try again later")
        self.retry_after = retry_after
        self.what = what


class ReportService:
    """Files beta-tester reports."""

    def __init__(
        self,
        store: Store,
        rules: RulesHolder,
        metrics: Metrics,
        clock: Callable[[], datetime],
        incidents: IncidentService,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.clock = clock
        self.incidents = incidents  # rendering context, coalescing, the timeline
        self.on_commit = on_commit
        self._limits: tuple[object, SlidingWindow, SlidingWindow] | None = None

    def _windows(self, cfg: RulesConfig) -> tuple[SlidingWindow, SlidingWindow]:
        """The per-client and per-reporter windows, made again when the rules change them."""
        limits = cfg.reports.rate_limit
        if self._limits is None or self._limits[0] != limits:
            per_client = SlidingWindow(*limits.per_client)
            per_reporter = SlidingWindow(*limits.per_reporter)
            self._limits = (limits, per_client, per_reporter)
        return self._limits[1], self._limits[2]

    def check_rate(self, report: Report, client: str) -> None:
        """Count this report against its client's and reporter's limits; RateLimited if
        either is used up (counted as rate_limited)."""
        cfg, now = self.rules.current, self.clock()
        per_client, per_reporter = self._windows(cfg)
        contact = (report.reporter.email or report.reporter.telegram or "").casefold()
        checks = (("client", per_client, client), ("reporter", per_reporter, contact))
        for what, window, key in checks:
            wait = window.hit(key, now)
            if wait is not None:
                self.metrics.reports_received.labels(report.source, "rate_limited").inc()
                raise RateLimited(wait, what)

    async def file(self, report: Report, mail: MailTaken | None = None) -> Filed:
        """File a report (already checked and counted against its limits); ``mail``: the
        e-mail it came in, taken with it (MailTakenAlready if it was taken meanwhile)."""
        filed, opened, paged = await until_committed(lambda: self._attempt(report, mail))
        outcome = "duplicate" if filed.duplicate else "accepted"
        self.metrics.reports_received.labels(report.source, outcome).inc()
        if opened is not None:
            self.metrics.incidents_opened.labels(opened.severity, opened.category).inc()
        for severity, step in paged:
            self.metrics.escalations.labels(severity, str(step)).inc()
        self.on_commit()
        return filed

    async def _untaken(self, mail: MailTaken | None) -> None:
        """Before deciding anything of an e-mail: it must not have been taken meanwhile (it
        is taken in UID order, each one, so whatever is at or below the last is)."""
        if mail is not None and mail.uid <= await self.store.mail_last_uid(
            mail.mailbox, mail.uidvalidity
        ):
            raise MailTakenAlready(f"{mail.mailbox} UID {mail.uid}")

    async def record_mail(self, mail: MailTaken) -> None:
        """An e-mail that is neither a report nor a comment, taken all the same."""
        await until_committed(lambda: self._record(mail))

    async def _record(self, mail: MailTaken) -> None:
        await self._untaken(mail)
        await self.store.commit(UnitOfWork(mail=[mail]), self.clock())

    async def comment(
        self, incident_id: int, text: str, files: Sequence[Attachment], left: Sequence[str],
        mail: MailTaken,
    ) -> bool:  # fmt: skip
        """The reporter of a report wrote again: a comment on its JIRA issue, the files
        uploaded there, a line on its timeline. False when there is no such report."""
        done = await until_committed(lambda: self._comment(incident_id, text, files, left, mail))
        if done:
            self.metrics.report_comments.labels("email").inc()
            self.on_commit()
        return done

    async def _comment(
        self, incident_id: int, text: str, files: Sequence[Attachment], left: Sequence[str],
        mail: MailTaken,
    ) -> bool:  # fmt: skip
        await self._untaken(mail)
        cfg, now = self.rules.current, self.clock()
        incident = await self.store.get_incident(incident_id)
        filed = await self.store.get_report(incident_id)
        if incident is None or filed is None:
            return False
        first = len(filed.report.attachments)
        data = {"via": "email", "chars": len(text), "attachments": len(files)}
        unit = UnitOfWork(
            events=[(incident_id, Event("reporter_comment", now, data))],
            mail=[replace(mail, incident_id=incident_id, outcome="comment")],
            attachments=[(incident_id, first + i, a) for i, a in enumerate(files)],
        )
        ctx = await self.incidents.context()
        order = instructions.reporter_comment(
            incident, cfg, ctx.installation, text, now, files, first, left
        )
        unit.notify(incident_id, NewNotification(Channel.JIRA, Kind.REPORT_COMMENT, order))
        told = instructions.slack(Kind.REPORT_COMMENT, incident, cfg)  # a line in the thread
        unit.notify(incident_id, NewNotification(Channel.SLACK, Kind.REPORT_COMMENT, told))
        await self.store.commit(unit, now)
        return True

    async def _attempt(
        self, report: Report, mail: MailTaken | None = None
    ) -> tuple[Filed, Incident | None, list[tuple[str, int]]]:
        """One read–decide–commit: the answer, the incident opened, the steps that paged."""
        await self._untaken(mail)
        cfg, now = self.rules.current, self.clock()
        key = dedup_key(report)
        found = await self.store.find_report(key, now - cfg.reports.dedup_window)
        if found is not None:
            incident_id, ref = found
            incident = await self.store.get_incident(incident_id)
            if incident is not None:
                again = Event("reported_again", now, {"via": report.source})
                unit = UnitOfWork(events=[(incident_id, again)])
                if mail is not None:
                    unit.mail.append(replace(mail, incident_id=incident_id, outcome="duplicate"))
                await self.store.commit(unit, now)
                return Filed(incident_id, ref, incident.status.value, duplicate=True), None, []
        [incident_id] = await self.store.reserve_incident_ids(1)
        decided = triage(report, cfg)
        team = cfg.categories[decided.category].team
        incident = Incident(
            id=incident_id,
            key=f"report:{incident_id}",
            rule=decided.rule or "report",
            severity=decided.severity,
            category=decided.category,
            team=team,
            status=Status.TRIGGERED,
            summary=cut(one_line(report.title), SUMMARY_CHARS),
            group_labels={},
            opened_at=now,
            triggered_at=now,
            first_starts_at=now,
            source="report",
        )
        ref = reference(now.astimezone(zone_of(incident, cfg)), incident_id)
        opened = Event(
            "opened",
            now,
            {"severity": incident.severity, "source": "report", "reference": ref,
             "via": report.source, "rule": decided.rule},
        )  # fmt: skip
        change = Change(incident, True, (), (opened,), (Kind.OPENED,))
        unit = UnitOfWork()
        collect(unit, incident, change, cfg, {})
        unit.add_timers(incident_id, [triage_timer(cfg, now)])
        filed = FiledReport(incident_id, ref, report, key, now)
        unit.reports.append(filed)
        if mail is not None:
            unit.mail.append(replace(mail, incident_id=incident_id, outcome="accepted"))
        ctx = await self.incidents.context()
        notice = Notice(incident, change, len(unit.events), filed)
        await render(unit, notice, cfg, ctx, self.incidents.coalesce_seconds, self.store.timeline)
        receipt = reporter_notice.notice(
            Kind.REPORT_RECEIVED, filed, incident, cfg, now, ctx.installation
        )
        if receipt is not None:
            note = NewNotification(Channel.REPORTER, Kind.REPORT_RECEIVED, receipt)
            unit.notify(incident_id, note)
        paged = await fire_due_now(unit, cfg, ctx, now, Pacer())
        await self.store.commit(unit, now)
        return Filed(incident_id, ref, incident.status.value), incident, paged
