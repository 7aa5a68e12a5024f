"""The Store interface: every backend (SQLite, PostgreSQL) implements exactly this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from receiver.domain.delivery import Effect as Effect
from receiver.domain.delivery import OutboxItem as OutboxItem
from receiver.domain.delivery import Outcome, Prior
from receiver.domain.escalation import Timer
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.notifications import merge_payloads


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


@dataclass(frozen=True)
class NewNotification:
    """An outbox row to insert.

    With ``coalesce_seconds`` the row waits that long, and further notifications of the
    same kind for the same incident and channel fold into it while it waits (through
    ``merge_payloads``); any other notification for them sends it at once.
    """

    channel: str
    kind: str
    payload: dict[str, Any]
    coalesce_seconds: float = 0.0


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


@dataclass
class UnitOfWork:
    """Everything one decision writes, committed atomically in a single transaction.

    Incidents with ``id`` None are inserted and get their id, those whose id is in ``new``
    (reserved through ``Store.reserve_incident_ids``) are inserted with it; the others are
    updated only if their ``version`` is still the one that was read, else the commit raises
    Conflict. Rows refer to incidents by object.
    """

    incidents: list[Incident] = field(default_factory=list)
    alerts: list[tuple[Incident, AlertRecord]] = field(default_factory=list)
    events: list[tuple[Incident, Event]] = field(default_factory=list)
    outbox: list[tuple[Incident | None, NewNotification]] = field(default_factory=list)
    timers: list[tuple[Incident, Timer]] = field(default_factory=list)
    # Incidents whose pending timers stop (ack, resolve, or re-planned on a severity raise);
    # applied before the new timers above are added.
    cancel_timers: list[Incident] = field(default_factory=list)
    # Timers this unit fires: each must still be pending, else the commit raises Conflict.
    fired_timers: list[int] = field(default_factory=list)
    # (schedule, next_at as read, new next_at): the schedule must still be due at the time
    # read, else the commit raises Conflict (another replica ran it meanwhile).
    advance_schedule: tuple[str, datetime, datetime] | None = None
    # Ids of the incidents above to insert with the id they carry (reserved beforehand).
    new: set[int] = field(default_factory=set)

    # Identities of the incidents above that are included, timed and cancelled, so a unit
    # touching thousands of incidents does constant work per change.
    _included: set[int] = field(default_factory=set, repr=False, compare=False)
    _timed: set[int] = field(default_factory=set, repr=False, compare=False)
    _cancelled: set[int] = field(default_factory=set, repr=False, compare=False)
    # (owner identity, channel) -> index in outbox of the last notification for that queue.
    _last_note: dict[tuple[int, str], int] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=0, repr=False, compare=False)  # outbox rows in _last_note

    def __post_init__(self) -> None:
        self._included.update(id(i) for i in self.incidents)
        self._timed.update(id(owner) for owner, _ in self.timers)
        self._cancelled.update(id(i) for i in self.cancel_timers)
        self._index_outbox()

    def notify(self, owner: Incident | None, note: NewNotification) -> None:
        """Queue a notification; one of a coalescing kind folds into the unit's previous
        one of that kind for the same incident and channel, as the store would fold it."""
        self._index_outbox()  # rows appended to ``outbox`` directly count too
        queue = (id(owner), note.channel)
        last = self._last_note.get(queue)
        if last is not None and note.coalesce_seconds > 0:
            waiting = self.outbox[last][1]
            if waiting.kind == note.kind and waiting.coalesce_seconds > 0:
                merged = merge_payloads(waiting.payload, note.payload)
                self.outbox[last] = (owner, replace(note, payload=merged))
                return
        self._last_note[queue] = len(self.outbox)
        self.outbox.append((owner, note))
        self._indexed = len(self.outbox)

    def _index_outbox(self) -> None:
        for index in range(self._indexed, len(self.outbox)):
            owner, note = self.outbox[index]
            self._last_note[(id(owner), note.channel)] = index
        self._indexed = len(self.outbox)

    def touch(self, incident: Incident) -> None:
        """Include an incident once, however many changes touch it."""
        if id(incident) not in self._included:
            self._included.add(id(incident))
            self.incidents.append(incident)

    def drop_timers(self, incident: Incident) -> None:
        """Forget the timers this unit was going to add for an incident."""
        if id(incident) in self._timed:
            self._timed.discard(id(incident))
            self.timers = [t for t in self.timers if t[0] is not incident]

    def add_timers(self, incident: Incident, timers: Iterable[Timer]) -> None:
        """Timers to add for an incident."""
        planned = [(incident, timer) for timer in timers]
        if planned:
            self._timed.add(id(incident))
            self.timers.extend(planned)

    def take_timers(self, due: Callable[[Timer], bool]) -> list[tuple[Incident, Timer]]:
        """Remove the timers to add that ``due`` selects and return them (to fire them in
        this unit instead of storing them)."""
        taken = [(owner, timer) for owner, timer in self.timers if due(timer)]
        if taken:
            self.timers = [(owner, timer) for owner, timer in self.timers if not due(timer)]
            self._timed = {id(owner) for owner, _ in self.timers}
        return taken

    def cancel(self, incident: Incident) -> None:
        """Stop an incident's pending timers (once, however often it is asked)."""
        if id(incident) not in self._cancelled:
            self._cancelled.add(id(incident))
            self.cancel_timers.append(incident)


class PartWriter(Protocol):
    """One transaction written a unit of work at a time (``Store.write_in_parts``), so that
    units decided one after another (and kept elsewhere meanwhile) need not all be held at
    once. The units must concern different incidents."""

    async def write(self, unit: UnitOfWork) -> None:
        """Write one unit (its incidents' versions checked as at commit: Conflict undoes
        the whole transaction). Its objects are not written back into: incidents keep their
        versions, and each must carry its id (reserved)."""


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

    async def commit(self, unit: UnitOfWork, now: datetime) -> None:
        """Write a unit of work atomically and durably; raises Conflict or StoreUnavailable."""

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

    async def schedule_next(self, name: str, initial: datetime) -> datetime:
        """When a recurring job is next due; a schedule not stored yet starts at ``initial``."""

    async def digest_incidents(self, since: datetime) -> list[Incident]:
        """Incidents opened, acknowledged or resolved at or after ``since``, and every one
        not resolved, in id order."""
