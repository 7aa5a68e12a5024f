"""``create_app``: the one place that wires settings, rules, store, service, worker and routes."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

import structlog
from aiohttp import web

from receiver.api import (
    actions,
    feedback,
    heartbeats,
    incidents,
    maintenance,
    ops,
    slack,
    telegram,
    triage,
)
from receiver.api import reports as api_reports
from receiver.api.keys import (
    CLOCK,
    HEARTBEAT_LOOP,
    HEARTBEATS,
    INGEST,
    MAIL,
    METRICS,
    RECONCILER,
    REPORTS,
    RULES,
    SERVICE,
    SETTINGS,
    STORE,
    TIMERS,
    WORKER,
)
from receiver.api.middleware import observe
from receiver.api.webhook import webhook
from receiver.config.loader import ConfigError
from receiver.console.routes import setup as console_setup
from receiver.domain.reports import Attachment
from receiver.intake.alertmanager import AlertmanagerClient
from receiver.intake.imap import ImapMailbox, parse_imap_url
from receiver.metrics import CHANNELS, Metrics
from receiver.notify.base import ByVia, LogNotifier, Notifier
from receiver.notify.email import EmailNotifier
from receiver.notify.jira import AttachmentSource, JiraNotifier, LibraryJira, jira_connector
from receiver.notify.slack import slack_notifiers
from receiver.notify.telegram import TelegramClient, TelegramNotifier, TelegramReporterNotice
from receiver.outbox.worker import OutboxWorker, lane_concurrency
from receiver.service import IncidentService
from receiver.service.digest import digest_loop
from receiver.service.followup import FollowUp
from receiver.service.heartbeats import HeartbeatWatch, heartbeat_loop
from receiver.service.ingest import IngestQueue
from receiver.service.loops import Loop, Poller, running
from receiver.service.mail import MailIntake
from receiver.service.reload import reload_rules
from receiver.service.reports import ReportService
from receiver.service.rules import RulesHolder
from receiver.service.silences import Reconciler
from receiver.service.timers import timer_loop
from receiver.settings import Settings
from receiver.store import Store, StoreUnavailable, store_from_url

log = structlog.get_logger("receiver")

# A webhook makes thousands of short-lived containers. With the default threshold (700) the
# collector runs several times per webhook and its full passes walk every module, schema
# and rule object: ingestion ran 10-15% slower and its p99 doubled (bench/ingest).
GC_THRESHOLDS = (50_000, 20, 20)


def utcnow() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def report_files(store: Store) -> AttachmentSource:
    """A report's attachments, read from the store when its JIRA issue gets them."""

    async def files(incident_id: int) -> Sequence[Attachment]:
        filed = await store.get_report(incident_id)
        return filed.report.attachments if filed is not None else ()

    return files


def mail_intake(
    settings: Settings, store: Store, reports: ReportService, rules: RulesHolder, metrics: Metrics
) -> MailIntake:
    """The beta-feedback mailbox's intake (RECEIVER_REPORTS_IMAP_URL)."""
    assert settings.reports_imap_url is not None
    target = parse_imap_url(settings.reports_imap_url.get_secret_value())
    return MailIntake(
        ImapMailbox(target),
        store,
        reports,
        rules,
        metrics,
        own_address=parseaddr(settings.smtp_from or "")[1] or None,
        poll_seconds=settings.reports_imap_poll_seconds,
    )


def default_notifiers(settings: Settings, metrics: Metrics, store: Store) -> dict[str, Notifier]:
    """A real notifier for every channel that has its settings, log-only for the rest."""
    notifiers: dict[str, Notifier] = {channel: LogNotifier(channel) for channel in CHANNELS}
    if settings.jira_url:
        token = settings.jira_token.get_secret_value() if settings.jira_token else None
        connect = jira_connector(
            settings.jira_url, settings.jira_user, token, settings.jira_deployment
        )
        notifiers["jira"] = JiraNotifier(
            LibraryJira(connect),
            metrics,
            threads=lane_concurrency(settings.outbox_concurrency, "jira"),
            files=report_files(store),
        )
    if settings.slack_token:
        slack, pager, poster = slack_notifiers(
            settings.slack_token.get_secret_value(), settings.slack_api_url
        )
        notifiers.update(slack=slack, pager=pager, announce=poster, digest=poster)
    mail: Notifier = notifiers["email"]
    if settings.smtp_url and settings.smtp_from:
        mail = notifiers["email"] = EmailNotifier(
            settings.smtp_url.get_secret_value(), settings.smtp_from
        )
    chat: Notifier = LogNotifier("reporter")
    if settings.telegram_token:
        client = TelegramClient(settings.telegram_token.get_secret_value(),
                                settings.telegram_api_url)  # fmt: skip
        notifiers["telegram"] = notifiers["announce_telegram"] = TelegramNotifier(client)
        chat = TelegramReporterNotice(client)
    notifiers["reporter"] = ByVia({"email": mail, "telegram": chat}, "email")
    return notifiers


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    rules: RulesHolder | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], datetime] = utcnow,
    notifiers: Mapping[str, Notifier] | None = None,
    run_worker: bool = True,
    handle_signals: bool = False,
) -> web.Application:
    """Build the application; tests pass their own store, clock and notifiers."""
    metrics = metrics or Metrics()
    rules = rules or RulesHolder(settings.rules, metrics)
    store = store or store_from_url(settings.database_url)
    worker = OutboxWorker(
        store,
        notifiers if notifiers is not None else default_notifiers(settings, metrics, store),
        metrics,
        clock,
        max_age=timedelta(seconds=settings.outbox_max_age_seconds),
        poll_seconds=settings.outbox_poll_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        concurrency=settings.outbox_concurrency,
        on_issue=lambda ids: followup.issue_linked(ids),
        on_page_failed=lambda items: service.paging.failed(items),
        translate=lambda items: followup.translate(items),
    )

    def committed() -> None:  # new outbox rows or timers may be due right away
        worker.wake()
        timers.wake()

    service = IncidentService(
        store,
        rules,
        metrics,
        clock,
        on_commit=committed,
        coalesce_seconds=settings.coalesce_seconds,
        jira_url=settings.jira_url,
        public_url=settings.public_url,
    )
    followup = FollowUp(store, rules, clock, service.context, on_commit=committed)
    reports = ReportService(store, rules, metrics, clock, service, on_commit=committed)
    timers = timer_loop(service, settings.outbox_poll_seconds, settings.outbox_lease_seconds)

    app = web.Application(middlewares=[observe], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[STORE] = store
    app[RULES] = rules
    app[METRICS] = metrics
    app[SERVICE] = service
    app[REPORTS] = reports
    app[WORKER] = worker
    app[INGEST] = IngestQueue(service)
    app[TIMERS] = timers
    app[CLOCK] = clock
    app[HEARTBEATS] = HeartbeatWatch(service)
    app[HEARTBEAT_LOOP] = heartbeat_loop(app[HEARTBEATS], settings.outbox_poll_seconds)
    if settings.reports_imap_url is not None:
        app[MAIL] = mail_intake(settings, store, reports, rules, metrics)
    if settings.alertmanager_urls():
        client = AlertmanagerClient(settings.alertmanager_urls())
        reconciler = Reconciler(service, client, settings.alertmanager_grace_seconds)
        app[RECONCILER] = Poller(
            "alertmanager", reconciler.step, settings.alertmanager_poll_seconds
        )

    app.router.add_post("/webhook", webhook)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_post("/-/reload", ops.reload)
    app.router.add_get("/api/v1/incidents", incidents.list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", incidents.get_incident)
    app.router.add_get("/api/v1/incidents/{id}/timeline", incidents.get_timeline)
    app.router.add_post("/api/v1/incidents/{id}/ack", incidents.acknowledge)
    app.router.add_post("/api/v1/incidents/{id}/mitigate", incidents.mitigate)
    app.router.add_post("/api/v1/incidents/{id}/resolve", incidents.resolve)
    app.router.add_post("/api/v1/incidents/{id}/report", incidents.report)
    app.router.add_post("/api/v1/maintenance", maintenance.create)
    app.router.add_get("/api/v1/maintenance", maintenance.list_windows)
    app.router.add_delete("/api/v1/maintenance/{id}", maintenance.end)
    app.router.add_post("/api/v1/incidents/{id}/triage", triage.triage)
    app.router.add_post("/api/v1/incidents/{id}/link", triage.link)
    app.router.add_post("/api/v1/incidents/{id}/note", actions.note)
    app.router.add_post("/api/v1/incidents/{id}/reassign", actions.reassign)
    app.router.add_post("/api/v1/incidents/{id}/unack", actions.unacknowledge)
    app.router.add_post("/api/v1/incidents/{id}/escalate", actions.escalate)
    app.router.add_post("/api/v1/incidents/{id}/retry", actions.retry_incident)
    app.router.add_post("/api/v1/deliveries/{id}/retry", actions.retry_delivery)
    app.router.add_get("/api/v1/deliveries", incidents.list_deliveries)
    app.router.add_get("/api/v1/heartbeats", heartbeats.list_heartbeats)
    app.router.add_post("/api/v1/heartbeats/{name}", heartbeats.ping)
    app.router.add_post("/api/v1/reports", api_reports.file_report)
    app.router.add_route("OPTIONS", "/api/v1/reports", api_reports.preflight)
    feedback.routes(app)  # the report form and the web app's feedback button
    console_setup(app)  # the team's web console under /ui/
    app.router.add_post("/slack/interactions", slack.interactions)
    app.router.add_post("/telegram/webhook", telegram.webhook)

    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_notifiers_ctx)
    app.cleanup_ctx.append(_background(lambda app: app[INGEST]))
    if run_worker:
        app.cleanup_ctx.append(_background(lambda app: app[WORKER]))
        app.cleanup_ctx.append(_background(lambda app: app[TIMERS]))
        app.cleanup_ctx.append(_background(_digest))
        app.cleanup_ctx.append(_background(lambda app: app[HEARTBEAT_LOOP]))
        if MAIL in app:
            app.cleanup_ctx.append(_background(lambda app: app[MAIL].loop))
        if RECONCILER in app:
            app.cleanup_ctx.append(_background(lambda app: app[RECONCILER]))
    if handle_signals:
        app.cleanup_ctx.append(_sighup_ctx)
    return app


async def settle_heap(app: web.Application) -> None:
    """Once started: keep what is loaded out of the collector's passes, and collect rarely."""
    gc.collect()
    gc.freeze()  # modules, settings, rules, pydantic schemas: alive until the process ends
    gc.set_threshold(*GC_THRESHOLDS)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    await store.open()  # backend and installation are in serve's receiver_started line
    known = app[RULES].current.severities
    unknown = sorted({sev for sev, _ in await store.open_counts() if sev not in known})
    if unknown:  # a reload would refuse these rules; at startup they are kept, and said
        log.warning("open_incidents_with_unknown_severity", severities=unknown)
    yield
    await app[STORE].close()


async def _notifiers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Notifiers holding connections of their own close them once the worker has stopped."""
    yield
    for notifier in app[WORKER].notifiers.values():
        close = getattr(notifier, "close", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing is best effort; the process is ending
                log.warning("notifier_close_failed", exc_info=True)


# On shutdown the HTTP server has stopped accepting and answered the requests in flight
# before these run; background loops then get this long to finish the work under way.
SHUTDOWN_GRACE_SECONDS = 5.0


def _background(
    loop_of: Callable[[web.Application], Loop],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context running the app's loop ``loop_of(app)`` for the app's lifetime
    (``receiver.service.loops.running``: stopped with a grace period, then finished)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with running(loop_of(app), SHUTDOWN_GRACE_SECONDS):
            yield

    return ctx


def _digest(app: web.Application) -> Loop:
    poll = app[SETTINGS].outbox_poll_seconds
    return digest_loop(app[STORE], app[RULES], app[CLOCK], app[WORKER].wake, poll)


async def _sighup_ctx(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            await reload_rules(app[RULES], app[STORE])
        except ConfigError:
            pass  # logged and exported by the holder
        except StoreUnavailable as exc:
            app[RULES].metrics.config_reload_ok.set(0)
            log.error("rules_reload_failed", reason="store unavailable", error=str(exc)[:200])

    def on_sighup() -> None:
        task = loop.create_task(reload(), name="reload")
        running.add(task)
        task.add_done_callback(running.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    yield
    loop.remove_signal_handler(signal.SIGHUP)
    for task in running:
        task.cancel()
