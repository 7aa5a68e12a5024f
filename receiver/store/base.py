"""The Store interface: every backend (SQLite, PostgreSQL) implements exactly this."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from receiver.domain.model import AlertRecord, Event, Incident


class StoreUnavailable(Exception):
    """The store could not read or commit; callers answer 503 and lose nothing."""


@dataclass(frozen=True)
class OutboxItem:
    """A claimed delivery."""

    id: int
    incident_id: int | None
    channel: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """An outbox row as the API shows it."""

    id: int
    incident_id: int | None
    channel: str
    kind: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class NewNotification:
    """An outbox row to insert; ``incident_id`` None means the incident being written."""

    channel: str
    kind: str
    payload: dict[str, Any]


class Transaction(Protocol):
    """Reads and writes inside one atomic, durable unit."""

    async def latest_incident(self, key: str) -> Incident | None:
        """The newest incident with this key."""

    async def incident(self, incident_id: int) -> Incident | None:
        """One incident by id, locked for update where the backend can."""

    async def alerts_by_fingerprint(
        self, incident_id: int, fingerprints: Sequence[str]
    ) -> dict[str, AlertRecord]:
        """Stored alerts of an incident among these fingerprints."""

    async def firing_count(self, incident_id: int) -> int:
        """How many of an incident's alerts are firing."""

    async def save_incident(self, incident: Incident) -> int:
        """Insert (id None) or update an incident; returns its id."""

    async def save_alerts(self, incident_id: int, alerts: Sequence[AlertRecord]) -> None:
        """Insert or update alerts of an incident."""

    async def add_events(self, incident_id: int, events: Sequence[Event]) -> None:
        """Append timeline entries."""

    async def enqueue(
        self, incident_id: int | None, items: Sequence[NewNotification], now: datetime
    ) -> None:
        """Add outbox rows, delivered after commit."""


class Store(Protocol):
    """Durable state: incidents, alerts, timeline and the outbox."""

    async def open(self) -> None:
        """Connect and migrate the schema."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """An atomic unit; commits on normal exit, rolls back on exception."""

    async def list_incidents(
        self, status: str | None, severity: str | None, limit: int, before: int | None
    ) -> list[Incident]:
        """Incidents, newest first."""

    async def get_incident(self, incident_id: int) -> Incident | None:
        """One incident."""

    async def incident_alerts(
        self, incident_ids: Sequence[int], limit_per_incident: int | None = None
    ) -> dict[int, list[AlertRecord]]:
        """Alerts of several incidents, optionally only the first few of each."""

    async def alert_counts(self, incident_ids: Sequence[int]) -> dict[int, int]:
        """How many alerts each incident has."""

    async def timeline(self, incident_id: int) -> list[Event]:
        """An incident's timeline, oldest first."""

    async def open_counts(self) -> dict[tuple[str, str], int]:
        """Open incidents by (severity, status)."""

    async def claim_outbox(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[OutboxItem]:
        """Claim due deliveries, the oldest pending per (channel, incident) only."""

    async def outbox_done(self, item_id: int, now: datetime) -> None:
        """Mark a delivery sent."""

    async def outbox_retry(self, item_id: int, next_at: datetime, error: str) -> None:
        """Release a claim and schedule the next attempt."""

    async def outbox_dead(self, item_id: int, now: datetime, error: str) -> None:
        """Give up on a delivery; it stays visible as dead."""

    async def outbox_stats(self, now: datetime) -> tuple[int, float]:
        """Pending deliveries and the age in seconds of the oldest."""

    async def deliveries(
        self, status: str | None, incident_id: int | None, limit: int
    ) -> list[Delivery]:
        """Outbox rows for the API, newest first."""
