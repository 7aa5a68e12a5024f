"""Rows as both stores read and write them: epoch seconds and JSON text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from receiver.domain.escalation import Timer, TimerKind
from receiver.domain.model import AlertRecord, AlertStatus, Event, Incident, Status
from receiver.domain.reports import Attachment, Environment, FiledReport, Report, Reporter
from receiver.jsonfast import dumps, loads
from receiver.store.base import Delivery


def ts(value: datetime | None) -> float | None:
    """A datetime as epoch seconds."""
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def utc(value: float) -> datetime:
    """Epoch seconds, never NULL, as an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)


INCIDENT_COLUMNS = (
    "id, key, rule, severity, category, team, status, summary, group_labels, opened_at, "
    "triggered_at, first_starts_at, acknowledged_at, acknowledged_by, resolved_at, "
    "resolved_by, jira_key, firing_alerts, version, alertmanager_url, source, mitigated_at, "
    "mitigated_by, reported_at, reported_by, maintenance, assignee"
)
MAINTENANCE_COLUMNS = "id, matchers, starts_at, ends_at, reason, created_by, ended_by"
ALERT_COLUMNS = (
    "incident_id, fingerprint, status, severity, labels, annotations, starts_at, ends_at, "
    "generator_url, first_seen, last_seen"
)
# What an insert of an incident writes: id, incident_values, source.
INSERTED_INCIDENT_COLUMNS = (
    "id, key, rule, severity, category, team, status, summary, group_labels, opened_at, "
    "triggered_at, first_starts_at, acknowledged_at, acknowledged_by, resolved_at, "
    "resolved_by, jira_key, firing_alerts, alertmanager_url, mitigated_at, mitigated_by, "
    "reported_at, reported_by, maintenance, assignee, source"
)
# An alert stored again: everything but when it was first seen.
ALERT_UPSERT = (
    "ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status=excluded.status, "
    "severity=excluded.severity, labels=excluded.labels, annotations=excluded.annotations, "
    "starts_at=excluded.starts_at, ends_at=excluded.ends_at, "
    "generator_url=excluded.generator_url, last_seen=excluded.last_seen"
)
# The incident columns qualified by the table alias "i", for joins.
INCIDENT_COLUMNS_OF_I = ", ".join(f"i.{c.strip()}" for c in INCIDENT_COLUMNS.split(","))
# The same, qualified by the table alias "a", for joins.
ALERT_COLUMNS_OF_A = ", ".join(f"a.{c.strip()}" for c in ALERT_COLUMNS.split(","))


def incident_from_row(row: Sequence[Any]) -> Incident:
    """An incident from a row of INCIDENT_COLUMNS."""
    return Incident(
        id=row[0],
        key=row[1],
        rule=row[2],
        severity=row[3],
        category=row[4],
        team=row[5],
        status=Status(row[6]),
        summary=row[7],
        group_labels=loads(row[8]),
        opened_at=utc(row[9]),
        triggered_at=utc(row[10]),
        first_starts_at=utc(row[11]),
        acknowledged_at=dt(row[12]),
        acknowledged_by=row[13],
        resolved_at=dt(row[14]),
        resolved_by=row[15],
        jira_key=row[16],
        firing_alerts=row[17],
        version=row[18],
        alertmanager_url=row[19],
        source=row[20],
        mitigated_at=dt(row[21]),
        mitigated_by=row[22],
        reported_at=dt(row[23]),
        reported_by=row[24],
        maintenance=row[25],
        assignee=row[26],
    )


def incident_values(incident: Incident) -> tuple[Any, ...]:
    """An incident's fields that a change may update, in the order of INCIDENT_COLUMNS
    (without id, version and source, which an insert alone writes)."""
    return (
        incident.key,
        incident.rule,
        incident.severity,
        incident.category,
        incident.team,
        incident.status.value,
        incident.summary,
        dumps(incident.group_labels),
        ts(incident.opened_at),
        ts(incident.triggered_at),
        ts(incident.first_starts_at),
        ts(incident.acknowledged_at),
        incident.acknowledged_by,
        ts(incident.resolved_at),
        incident.resolved_by,
        incident.jira_key,
        incident.firing_alerts,
        incident.alertmanager_url,
        ts(incident.mitigated_at),
        incident.mitigated_by,
        ts(incident.reported_at),
        incident.reported_by,
        incident.maintenance,
        incident.assignee,
    )


def alert_from_row(row: Sequence[Any]) -> AlertRecord:
    """An alert from a row of ALERT_COLUMNS."""
    return AlertRecord(
        fingerprint=row[1],
        status=AlertStatus(row[2]),
        severity=row[3],
        labels=loads(row[4]),
        annotations=loads(row[5]),
        starts_at=utc(row[6]),
        ends_at=dt(row[7]),
        generator_url=row[8],
        first_seen=utc(row[9]),
        last_seen=utc(row[10]),
    )


def alert_values(incident_id: int, a: AlertRecord) -> tuple[Any, ...]:
    """ALERT_COLUMNS of one alert."""
    return (
        incident_id,
        a.fingerprint,
        a.status.value,
        a.severity,
        dumps(a.labels),
        dumps(a.annotations),
        ts(a.starts_at),
        ts(a.ends_at),
        a.generator_url,
        ts(a.first_seen),
        ts(a.last_seen),
    )


def timer_from_row(row: Sequence[Any]) -> Timer:
    """A stored timer from a row of (id, incident_id, kind, step, trigger_at, due_at)."""
    return Timer(TimerKind(row[2]), row[3], utc(row[5]), utc(row[4]), id=row[0], incident_id=row[1])


# Reads both stores make with the same SQL (no parameters) and the same rows.
OPEN_COUNTS = (
    "SELECT severity, status, count(*) FROM incidents WHERE status != 'resolved' "
    "GROUP BY severity, status"
)
OUTBOX_STATS = "SELECT count(*), min(created_at) FROM outbox WHERE status = 'pending'"
UNTRIAGED_REPORTS = (
    "SELECT count(*) FROM incidents i WHERE i.source = 'report' AND i.status != 'resolved' "
    "AND NOT EXISTS (SELECT 1 FROM timeline t WHERE t.incident_id = i.id AND t.event = 'triaged')"
)


def open_counts_of(rows: Sequence[Sequence[Any]]) -> dict[tuple[str, str], int]:
    """(severity, status) -> open incidents, from the rows of OPEN_COUNTS."""
    return {(r[0], r[1]): r[2] for r in rows}


def outbox_stats_of(row: Sequence[Any], now: datetime) -> tuple[int, float]:
    """Pending rows and the age in seconds of the oldest, from the row of OUTBOX_STATS."""
    count, oldest = row
    age = max(0.0, now.timestamp() - oldest) if oldest is not None else 0.0
    return int(count), age


def event_from_row(row: Sequence[Any]) -> Event:
    """A timeline entry from a row of (at, event, data)."""
    return Event(event=row[1], at=utc(row[0]), data=loads(row[2]))


DELIVERY_COLUMNS = (
    "id, incident_id, channel, kind, status, attempts, created_at, next_attempt_at, last_error, "
    "done_at, CASE WHEN kind = 'page' THEN payload END"
)
PAGE_FACTS = ("person", "step", "attempt", "medium", "due_at", "trigger")


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    """An outbox row as the API shows it, from a row of DELIVERY_COLUMNS: a page with whom
    it is for, at which step, on which of their channels."""
    page = None
    if row[10] is not None:
        order = loads(row[10])
        page = {k: order.get(k) for k in PAGE_FACTS}
        page["medium"] = page["medium"] or "slack"  # pages before other channels were Slack's
        page["attempt"] = page["attempt"] or 0
    done = utc(row[9]) if row[9] is not None else None
    return Delivery(
        row[0], row[1], row[2], row[3], row[4], row[5], utc(row[6]), utc(row[7]), row[8],
        done, page,
    )  # fmt: skip


REPORT_COLUMNS = (
    "incident_id, reference, source, title, description, category, environment, steps, "
    "expected, actual, reporter, dedup_key, created_at, thread"
)


def report_values(filed: FiledReport) -> tuple[Any, ...]:
    """REPORT_COLUMNS of a filed report."""
    r = filed.report
    return (
        filed.incident_id,
        filed.reference,
        r.source,
        r.title,
        r.description,
        r.category,
        dumps(asdict(r.environment)),
        r.steps,
        r.expected,
        r.actual,
        dumps(asdict(r.reporter)),
        filed.dedup_key,
        ts(filed.created_at),
        r.thread,
    )


def report_from_row(row: Sequence[Any], attachments: Sequence[Attachment] = ()) -> FiledReport:
    """A filed report from a row of REPORT_COLUMNS, with its attachments."""
    report = Report(
        title=row[3],
        description=row[4],
        reporter=Reporter(**loads(row[10])),
        source=row[2],
        category=row[5],
        environment=Environment(**loads(row[6])),
        steps=row[7],
        expected=row[8],
        actual=row[9],
        attachments=tuple(attachments),
        thread=row[13],
    )
    return FiledReport(row[0], row[1], report, row[11], utc(row[12]))
