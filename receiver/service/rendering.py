"""From decided changes to queued instructions: each change's deliveries rendered from the
incident as the change left it, and the escalation steps a unit fires at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from receiver.config.models import RulesConfig
from receiver.domain import fallback, instructions, reporter_notice
from receiver.domain.announce import announcements_for
from receiver.domain.delivery import Channel, Kind
from receiver.domain.escalation import Fired, TimerKind, fire
from receiver.domain.incidents import Change
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.notifications import CHANNELS_BY_KIND, COALESCED_KINDS, brief
from receiver.domain.phase_render import sentence
from receiver.domain.reports import FiledReport
from receiver.domain.slack_render import escape
from receiver.pacing import Pacer
from receiver.store.base import NewNotification, UnitOfWork


@dataclass(frozen=True)
class Context:
    """What rendering an instruction needs besides the incident and the rules: this
    installation's id (in the labels that find JIRA issues again) and JIRA's address (for
    links to issues)."""

    installation: str
    jira_url: str | None = None
    public_url: str | None = None  # the receiver's address as people reach it (in pages)

    def urls(self) -> dict[str, str | None]:
        """The addresses pages link to."""
        return {"jira_url": self.jira_url, "public_url": self.public_url}


@dataclass(frozen=True)
class Notice:
    """A change whose instructions are rendered once its incident has its id: the incident
    as the change left it (with that id), the change, and how many of the unit's timeline
    entries existed once it was made (a postmortem shows those of its incident)."""

    incident: Incident
    change: Change
    events: int
    report: FiledReport | None = None  # the beta-tester report the change files


def instruction(
    channel: str,
    kind: str,
    incident: Incident,
    events: Sequence[Event],
    cfg: RulesConfig,
    ctx: Context,
    alerts: Sequence[AlertRecord] = (),
    report: FiledReport | None = None,
) -> dict[str, object]:
    if channel == Channel.JIRA:
        return instructions.jira(kind, incident, events, cfg, ctx.installation, alerts, report)
    return instructions.slack(kind, incident, cfg, events)


def apply_fired(
    unit: UnitOfWork,
    incident: Incident,
    fired: Fired,
    cfg: RulesConfig,
    ctx: Context,
    due_at: datetime,
    alert: AlertRecord | None,
    now: datetime | None = None,
) -> None:
    """Add what a fired timer does to a unit: its timeline entries, the JIRA note, pages,
    and the timer that moves those pages on if nobody acknowledges them within
    ``page_retry`` of their going out (``now``, when later than when they were due)."""
    owner = incident.id
    assert owner is not None
    unit.events.extend((owner, e) for e in fired.events)
    for kind in fired.notifications:
        for channel in CHANNELS_BY_KIND.get(kind, ()):
            order = instruction(channel, kind, incident, fired.events, cfg, ctx)
            unit.notify(owner, NewNotification(channel, kind, order))
    if not fired.pages:
        return
    told = brief(incident, alert, cfg)
    if fired.phase_breach is not None:  # the page says which phase is overdue
        told["overdue"] = sentence(Kind.PHASE_OVERDUE, incident, fired.events, cfg)
    why = {
        (e.data.get("step"), e.data.get("person")): str(e.data.get("why"))
        for e in fired.events
        if e.event == "page_fallback"
    }
    for page in fired.pages:
        via = fallback.medium(cfg, page) or "slack"
        channel, order = instructions.page_via(
            via, page, incident, cfg, due_at, told, ctx.urls(), page.attempt,
            why.get((page.step, page.person)),
        )  # fmt: skip
        unit.notify(owner, NewNotification(channel, Kind.PAGE, order))
    sent = max(due_at, now) if now is not None else due_at
    unit.add_timers(owner, fallback.retry_timer(cfg, fired.pages, sent, incident.triggered_at))


async def fire_due_now(
    unit: UnitOfWork,
    cfg: RulesConfig,
    ctx: Context,
    now: datetime,
    pacer: Pacer,
    briefs: dict[int, AlertRecord] | None = None,
) -> list[tuple[str, int]]:
    """Fire within the unit the escalation steps due at once (step 0 of an open, reopen or
    raise): their pages commit with the alerts that caused them and go out as soon as the
    commit lands, with no round through the timer loop. Returns (severity, step) of each
    step that paged someone. (Thousands of pages render for a while: the loop runs meanwhile.)
    ``briefs``: an alert of each incident for its pages, where the unit has none of its own."""
    paged: list[tuple[str, int]] = []
    due = unit.take_timers(lambda t: t.kind is TimerKind.ESCALATION and t.due_at <= now)
    if not due:
        return paged
    alerts: dict[int, AlertRecord] = dict(briefs or {})  # for each page's brief
    for owner, record in unit.alerts:
        alerts.setdefault(owner, record)
    for owner, timer in due:
        incident = unit.incidents[owner]  # as the unit leaves it
        fired = fire(incident, timer, cfg, now)
        apply_fired(unit, incident, fired, cfg, ctx, timer.due_at, alerts.get(owner), now)
        if fired.pages:
            paged.append((incident.severity, timer.step))
        if pacer.due():
            await pacer.pause()
    return paged


async def render(
    unit: UnitOfWork,
    notice: Notice,
    cfg: RulesConfig,
    ctx: Context,
    coalesce_seconds: float,
    timeline_of: Callable[[int], Awaitable[list[Event]]],
) -> None:
    """Queue the instructions of one change, rendered from the incident as the change
    left it."""
    incident, change = notice.incident, notice.change
    owner = incident.id
    assert owner is not None and owner > 0, "render once the incident has its id"
    for kind in change.notifications:
        wait = coalesce_seconds if kind in COALESCED_KINDS else 0.0
        for channel in CHANNELS_BY_KIND.get(kind, ()):
            order = instruction(
                channel, kind, incident, change.events, cfg, ctx, change.alerts, notice.report
            )
            unit.notify(owner, NewNotification(channel, kind, order, wait))
    postmortem = cfg.jira.postmortem
    if (
        Kind.RESOLVED in change.notifications
        and postmortem is not None
        and incident.severity in postmortem.severities
    ):  # after the resolve on the same queue: the issue is written from the full timeline
        stored = [] if owner in unit.new else await timeline_of(owner)
        timeline = [*stored, *(e for o, e in unit.events[: notice.events] if o == owner)]
        order = instructions.postmortem(incident, timeline, cfg, ctx.installation)
        unit.notify(owner, NewNotification(Channel.JIRA, Kind.POSTMORTEM, order))
    if notice.report is not None and Kind.RESOLVED in change.notifications:
        told = reporter_notice.notice(
            Kind.REPORT_RESOLVED, notice.report, incident, cfg, change.events[-1].at,
            ctx.installation,
        )  # fmt: skip
        if told is not None:
            unit.notify(owner, NewNotification(Channel.REPORTER, Kind.REPORT_RESOLVED, told))
    moved = [k for k in change.notifications if k in instructions.UPDATES_ALL]
    if moved and any("telegram" in p.notify for p in cfg.people.values()):
        # pages on Telegram show where the incident stands (a no-op where none was sent)
        order = instructions.telegram_update(moved[-1], incident, cfg)
        unit.notify(owner, NewNotification(Channel.TELEGRAM, moved[-1], order))
    if incident.source != "alert":
        return  # what testers report is not announced back to them as an outage
    testers = cfg.channels.announce_telegram
    for kind, text in announcements_for(change.notifications, incident, change.events, cfg):
        order = {"channel": cfg.channels.announce, "text": escape(text)}
        unit.notify(owner, NewNotification(Channel.ANNOUNCE, kind, order))
        if testers is not None:  # the testers' Telegram channel: plain text
            told = {"chat_id": testers, "text": text}
            unit.notify(owner, NewNotification(Channel.ANNOUNCE_TELEGRAM, kind, told))
