"""The Store interface: every backend (SQLite, PostgreSQL) implements exactly this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from receiver.domain.delivery import Effect as Effect
from receiver.domain.delivery import OutboxItem as OutboxItem
from receiver.domain.delivery import Outcome, Prior
from receiver.domain.escalation import Timer
from receiver.domain.maintenance import Window
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.reports import FiledReport
from receiver.store.unit import Committed as Committed
from receiver.store.unit import MailTaken as MailTaken
from receiver.store.unit import NewNotification as NewNotification
from receiver.store.unit import UnitOfWork as UnitOfWork

# The status filter of ``Store.list_incidents`` that lists the incidents not resolved.
OPEN = "open"


class StoreUnavailable(Exception):
    """The store could not read or commit; callers answer 503 and lose nothing."""


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
    done_at: datetime | None = None  # when it was sent, or given up
    page: dict[str, Any] | None = None  # a page's person, step, attempt, medium and due_at


@dataclass(frozen=True)
class DeliveryOutcome:
    """What became of one claimed delivery: sent, retry at ``next_at``, dead, or released
    (not attempted to the end: the claim is dropped so any worker may take the row now),
    with the effects it had (recorded in the same transaction)."""

    id: int
    outcome: Outcome
    error: str | None = None
    next_at: datetime | None = None
    effects: tuple[Effect, ...] = ()


class Conflict(Exception):
    """What a unit of work was decided on changed before it committed; decide again."""


MAX_CONFLICT_RETRIES = 5
T = TypeVar("T")


async def until_committed(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a read–decide–commit attempt until its commit lands: a Conflict means what it
    read changed meanwhile, so it reads and decides again. After MAX_CONFLICT_RETRIES
    conflicts in a row, StoreUnavailable: the caller answers 503 and loses nothing."""
    for _ in range(MAX_CONFLICT_RETRIES - 1):
        try:
            return await attempt()
        except Conflict:
            continue
    try:
        return await attempt()
    except Conflict:
        raise StoreUnavailable("too many concurrent changes; retry later") from None


class PartWriter(Protocol):
    """One transaction written a unit of work at a time (``Store.write_in_parts``), so that
    units decided one after another (and kept elsewhere meanwhile) need not all be held at
    once. The units must concern different incidents."""

    async def write(self, unit: UnitOfWork) -> None:
        """Write one unit (its incidents' versions checked as at commit: Conflict undoes
        the whole transaction)."""


class Store(Protocol):
    """Durable state: incidents, alerts, timeline and the outbox."""

    async def open(self) -> None:
        """Connect and migrate the schema."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""

    async def installation_id(self) -> str:
        """This database's installation id, made once when its schema was created."""

    async def reserve_incident_ids(self, count: int) -> list[int]:
        """``count`` incident ids, increasing, that no incident has: a decision gives them to
        the incidents it opens, so every instruction rendered for one names its id. An id
        reserved but never committed is skipped; two processes sharing an SQLite file may be
        given the same one, and the second commit using it raises Conflict."""

    async def prior_effects(self, incident_ids: Sequence[int]) -> dict[int, Prior]:
        """What earlier deliveries of each incident recorded (its JIRA key, its Slack
        messages); an entry for every id asked, empty for an incident with none."""

    async def ingest_state(
        self, wanted: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Incident], dict[int, dict[str, AlertRecord]]]:
        """The newest incident of each key, and its stored alerts among that key's
        fingerprints (one entry, maybe empty, per incident found)."""

    def write_in_parts(self, now: datetime) -> AbstractAsyncContextManager[PartWriter]:
        """A transaction written part by part, committed durably when the block ends
        without an exception and rolled back otherwise: everything or nothing is stored."""

    async def commit(self, unit: UnitOfWork, now: datetime) -> Committed:
        """Write a unit of work atomically and durably, and say what it stored; raises
        Conflict or StoreUnavailable."""

    async def list_incidents(
        self,
        status: str | None,
        severity: str | None,
        limit: int,
        before: int | None,
        *,
        team: str | None = None,
        category: str | None = None,
        source: str | None = None,
    ) -> list[Incident]:
        """Incidents, newest first, those with ``id`` below ``before``; each filter given
        (None: any) must match: ``status`` one of the statuses, or ``OPEN`` (triggered or
        acknowledged), and the incident's ``severity``, ``team``, ``category``, ``source``."""

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

    async def claim_timers(self, now: datetime, limit: int, lease_seconds: float) -> list[Timer]:
        """Claim due pending timers (hidden from other claims until the lease passes)."""

    async def claim_outbox(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        finished: Sequence[DeliveryOutcome] = (),
        channel: str | None = None,
    ) -> list[OutboxItem]:
        """Record what became of earlier deliveries, then claim due ones (of one channel,
        when given), in one transaction.

        Only the oldest pending row of each (channel, incident) is claimable, so one
        incident's deliveries on one channel go out in order.
        """

    async def outbox_stats(self, now: datetime) -> tuple[int, float]:
        """Pending deliveries and the age in seconds of the oldest."""

    async def deliveries(
        self, status: str | None, incident_id: int | None, limit: int
    ) -> list[Delivery]:
        """Outbox rows for the API, newest first."""

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        """One outbox row, as ``deliveries`` shows it."""

    async def schedule_next(self, name: str, initial: datetime) -> datetime:
        """When a recurring job is next due; a schedule not stored yet starts at ``initial``."""

    async def heartbeats_seen(self, seen: Mapping[str, datetime]) -> None:
        """Record signs of life of heartbeats (a later one than stored moves it on)."""

    async def heartbeat_missed(self, name: str, at: datetime | None) -> None:
        """Record since when a heartbeat is missed (None: it is back)."""

    async def heartbeats(self) -> dict[str, tuple[datetime, datetime | None]]:
        """Every heartbeat seen: its last sign of life and since when it is missed."""

    async def set_password(self, person: str, hashed: str, at: datetime) -> None:
        """Store a person's console password hash (argon2), replacing theirs."""

    async def password(self, person: str) -> tuple[str, datetime] | None:
        """A person's console password hash and when it was set, if they have one."""

    async def linked_open(self, target_ids: Sequence[int]) -> list[tuple[int, Incident]]:
        """(target, incident) of the open incidents linked into any of these, in id order."""

    async def link_of(self, incident_id: int) -> int | None:
        """The incident this one is linked into, if any."""

    async def find_report(self, dedup_key: str, since: datetime) -> tuple[int, str] | None:
        """(incident id, reference) of the newest report with this dedup key filed at or
        after ``since``."""

    async def get_report(self, incident_id: int, attachments: bool = True) -> FiledReport | None:
        """The report that opened an incident, with its attachments (unless not wanted)."""

    async def untriaged_reports(self) -> int:
        """Open beta-tester reports with no triage on their timeline."""

    async def report_of_reference(self, reference: str) -> int | None:
        """The incident of the report with this reference, if any."""

    async def mail_last_uid(self, mailbox: str, uidvalidity: int) -> int:
        """The highest UID taken from the mailbox under this UIDVALIDITY (0: none)."""

    async def mail_known(self, message_ids: Sequence[str]) -> dict[str, int | None]:
        """Of these Message-IDs, those taken already, each with its report's incident (None
        when the e-mail was neither a report nor a comment)."""

    async def add_maintenance(
        self,
        matchers: Sequence[str],
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        by: str,
        now: datetime,
    ) -> int:
        """Store an API maintenance window; its id."""

    async def maintenance_windows(self, ending_after: datetime) -> list[Window]:
        """The API windows ending after a moment (those in force or to come), by start."""

    async def get_maintenance(self, window_id: int) -> Window | None:
        """One API window, ended or not."""

    async def held_by(self, window: str) -> list[Incident]:
        """The open incidents whose pages a window holds."""

    async def digest_incidents(self, since: datetime) -> list[Incident]:
        """Incidents opened, acknowledged or resolved at or after ``since``, and every one
        not resolved, in id order."""
