"""Every metric the receiver exports, on one object built from an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from receiver.config.models import PHASES

ACK_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200)
CHANNELS = (
    "jira", "slack", "pager", "telegram", "email", "announce", "announce_telegram", "digest",
    "reporter",
)  # fmt: skip
OUTCOMES = ("sent", "retried", "failed")
# Failure classes (receiver.outbox.policy.Reason); "none" goes with "sent" only.
FAILURE_REASONS = ("timeout", "rate_limited", "server_error", "client_error", "crash")
PAGE_MEDIA = ("slack", "telegram", "email", "log")
PAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900)
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


REPORT_SOURCES = ("web", "email", "telegram")
REPORT_OUTCOMES = ("accepted", "duplicate", "rejected", "rate_limited")


class Metrics:
    """The receiver's metrics (SPEC §7)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.webhook_requests = Counter(
            "receiver_webhook_requests",
            "Webhook requests by HTTP status code.",
            ["code"],
            registry=r,
        )
        self.webhook_duration = Histogram(
            "receiver_webhook_duration_seconds",
            "Time to answer a webhook, commit included.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.alerts_received = Counter(
            "receiver_alerts_received",
            "Alerts received, by Alertmanager status.",
            ["status"],
            registry=r,
        )
        self.duplicates_suppressed = Counter(
            "receiver_duplicates_suppressed",
            "Alerts that repeated what was already recorded (retries, HA pairs, repeats).",
            registry=r,
        )
        self.incidents_opened = Counter(
            "receiver_incidents_opened", "Incidents opened.", ["severity", "category"], registry=r
        )
        self.incidents_open = Gauge(
            "receiver_incidents_open",
            "Unresolved incidents now.",
            ["severity", "status"],
            registry=r,
        )
        self.alert_to_ack = Histogram(
            "receiver_alert_to_ack_seconds",
            "From the earliest startsAt of an incident's alerts to its acknowledgement.",
            ["severity", "category"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.ack_sla_breaches = Counter(
            "receiver_ack_sla_breaches",
            "Incidents whose ack timeout passed unacknowledged.",
            ["severity"],
            registry=r,
        )
        self.phase_sla_breaches = Counter(
            "receiver_phase_sla_breaches",
            "Incident phases (ack, mitigate, resolve, report) whose deadline passed unfinished.",
            ["phase", "severity"],
            registry=r,
        )
        self.phase_duration = Histogram(
            "receiver_phase_duration_seconds",
            "How long each finished phase took, from the end of the one before (the ack from "
            "the first alert).",
            ["phase", "severity", "category"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.escalations = Counter(
            "receiver_escalations", "Escalation steps fired.", ["severity", "step"], registry=r
        )
        self.notifications = Counter(
            "receiver_notifications",
            "Delivery attempts by channel, outcome and failure class.",
            ["channel", "outcome", "reason"],
            registry=r,
        )
        self.delivery_duration = Histogram(
            "receiver_delivery_duration_seconds",
            "One notifier call, by channel.",
            ["channel"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.page_latency = Histogram(
            "receiver_page_latency_seconds",
            "From a page becoming due (its commit, or its escalation step) to the channel "
            "accepting it.",
            ["channel", "severity"],
            buckets=PAGE_BUCKETS,
            registry=r,
        )
        self.heartbeat_last_seen = Gauge(
            "receiver_heartbeat_last_seen_timestamp_seconds",
            "When each heartbeat last showed a sign of life (Unix time).",
            ["name"],
            registry=r,
        )
        self.heartbeats_missed = Counter(
            "receiver_heartbeats_missed_total",
            "Heartbeats that went silent past every + grace (each opened an incident).",
            ["name"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "receiver_outbox_pending", "Deliveries waiting in the outbox.", registry=r
        )
        self.outbox_oldest = Gauge(
            "receiver_outbox_oldest_seconds", "Age of the oldest pending delivery.", registry=r
        )
        self.config_reload_ok = Gauge(
            "receiver_config_last_reload_successful",
            "1 when the last rules (re)load succeeded.",
            registry=r,
        )
        self.config_reload_time = Gauge(
            "receiver_config_last_reload_success_timestamp_seconds",
            "When the rules were last loaded successfully.",
            registry=r,
        )
        self.unknown_resolved = Counter(
            "receiver_unknown_resolved_alerts",
            "Resolved notifications for alerts the receiver never saw firing.",
            registry=r,
        )
        self.jira_missing_transition = Counter(
            "receiver_jira_missing_transitions",
            "JIRA transitions the workflow did not offer (logged, not retried).",
            ["transition"],
            registry=r,
        )
        self.reports_received = Counter(
            "receiver_reports_received",
            "Beta-tester reports by where they came from and what became of them.",
            ["source", "outcome"],
            registry=r,
        )
        self.reports_untriaged = Gauge(
            "receiver_reports_untriaged",
            "Open beta-tester reports nobody has triaged yet.",
            registry=r,
        )
        self.report_comments = Counter(
            "receiver_report_comments",
            "Reporters writing again about their report (comments on its JIRA issue).",
            ["source"],
            registry=r,
        )
        self.mailbox_polls = Counter(
            "receiver_reports_mailbox_polls",
            "Polls of the beta-feedback mailbox, by outcome (ok, or failed: unreachable, "
            "refused the login, timed out).",
            ["outcome"],
            registry=r,
        )
        for source in REPORT_SOURCES:
            self.report_comments.labels(source)
            for outcome in REPORT_OUTCOMES:
                self.reports_received.labels(source, outcome)
        for outcome in ("ok", "failed"):
            self.mailbox_polls.labels(outcome)
        for channel in CHANNELS:
            self.notifications.labels(channel, "sent", "none")
            for outcome in ("retried", "failed"):
                for reason in FAILURE_REASONS:
                    self.notifications.labels(channel, outcome, reason)
            self.delivery_duration.labels(channel)

    def prime(self, severities: list[str], categories: list[str], steps: dict[str, int]) -> None:
        """Create the labelled series the rules can produce at zero, so rate() and
        increase() see the first event after a start instead of a series appearing."""
        for severity in severities:
            self.ack_sla_breaches.labels(severity)
            for phase in PHASES:
                self.phase_sla_breaches.labels(phase, severity)
            for category in categories:
                self.incidents_opened.labels(severity, category)
                self.alert_to_ack.labels(severity, category)
                for phase in PHASES:
                    self.phase_duration.labels(phase, severity, category)
            for step in range(steps.get(severity, 0)):
                self.escalations.labels(severity, str(step))
            for medium in PAGE_MEDIA:
                self.page_latency.labels(medium, severity)

    def set_open(self, counts: dict[tuple[str, str], int], severities: list[str]) -> None:
        """Replace the open-incident gauge with fresh counts (zero for absent pairs)."""
        self.incidents_open.clear()
        for severity in severities:
            for status in ("triggered", "acknowledged"):
                self.incidents_open.labels(severity, status).set(counts.get((severity, status), 0))
        for (severity, status), count in counts.items():
            self.incidents_open.labels(severity, status).set(count)
