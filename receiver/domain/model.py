"""Plain data the domain decides over; no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Status(enum.StrEnum):
    """Incident lifecycle states."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# Where incidents come from: Alertmanager's alerts (and the receiver's own heartbeats), or a
# beta tester's report (section 8 of the spec).
INCIDENT_SOURCES = ("alert", "report")


class AlertStatus(enum.StrEnum):
    """Alertmanager's two alert states."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(slots=True)
class Alert:
    """One alert as Alertmanager delivered it; never changed once made.

    Not a frozen dataclass: one is made per alert received, and a frozen one costs
    several times as much to make.
    """

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str = ""
    alertmanager_url: str = ""  # the externalURL of the Alertmanager that sent it


@dataclass(frozen=True)
class Route:
    """What routing decided for one label set."""

    rule: str
    severity: str
    category: str
    team: str
    key: str
    group_labels: dict[str, str]
    jira_project: str
    jira_priority: str
    issue_type: str
    summary: str | None = None  # the rule's own, for alerts without a summary annotation


@dataclass
class AlertRecord:
    """An alert as stored under an incident."""

    fingerprint: str
    status: AlertStatus
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class Incident:
    """An incident's own row (alerts and timeline are kept separately); a change to it is
    a new Incident (``dataclasses.replace``), so whoever holds one may rely on it."""

    id: int | None
    key: str
    rule: str
    severity: str
    category: str
    team: str
    status: Status
    summary: str
    group_labels: dict[str, str]
    opened_at: datetime
    triggered_at: datetime
    first_starts_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    mitigated_at: datetime | None = None  # the impact stopped (a workaround, a rollback)
    mitigated_by: str | None = None
    reported_at: datetime | None = None  # the postmortem is written
    reported_by: str | None = None
    maintenance: str | None = None  # the maintenance window holding its pages, if one is
    assignee: str | None = None  # whom it was handed to by hand (reassign, a report's triage)
    jira_key: str | None = None
    firing_alerts: int = 0
    alertmanager_url: str = ""
    source: str = "alert"  # or "report": a beta tester's (INCIDENT_SOURCES)
    version: int = 0  # as read; every stored update bumps it, guarding against lost updates

    @property
    def is_open(self) -> bool:
        """Not yet resolved."""
        return self.status is not Status.RESOLVED

    @property
    def reopened(self) -> bool:
        """Whether its current trigger is a re-fire after a resolve (whose alerts started
        after the incident opened), not its open or a release from a maintenance window
        (which moves the trigger, not the first alert)."""
        return self.triggered_at > self.opened_at and self.first_starts_at > self.opened_at


@dataclass(frozen=True)
class Event:
    """One timeline entry."""

    event: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)
