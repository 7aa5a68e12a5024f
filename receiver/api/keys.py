"""Typed application keys: the one place where shared objects are named."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from receiver.metrics import Metrics
from receiver.outbox.worker import OutboxWorker
from receiver.service import IncidentService
from receiver.service.heartbeats import HeartbeatWatch
from receiver.service.ingest import IngestQueue
from receiver.service.loops import Poller
from receiver.service.mail import MailIntake
from receiver.service.reports import ReportService
from receiver.service.rules import RulesHolder
from receiver.settings import Settings
from receiver.store.base import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
RULES = web.AppKey("rules", RulesHolder)
METRICS = web.AppKey("metrics", Metrics)
SERVICE = web.AppKey("service", IncidentService)
REPORTS = web.AppKey("reports", ReportService)
WORKER = web.AppKey("worker", OutboxWorker)
INGEST = web.AppKey("ingest", IngestQueue)
TIMERS = web.AppKey("timers", Poller)
MAIL = web.AppKey("mail", MailIntake)  # only with RECEIVER_REPORTS_IMAP_URL
RECONCILER = web.AppKey("reconciler", Poller)  # only with RECEIVER_ALERTMANAGER_URL
HEARTBEATS = web.AppKey("heartbeats", HeartbeatWatch)
HEARTBEAT_LOOP = web.AppKey("heartbeat_loop", Poller)
Clock = Callable[[], datetime]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
