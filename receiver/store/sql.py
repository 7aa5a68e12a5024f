"""What a SQL backend gives the store core: its statements, by name, and a small executor
for its driver. Everything else, the store's rules, is written once in ``core``.

Conventions every backend's SQL follows:
- Times are epoch seconds, JSON objects text (``rows``); parameters are numbered.
- A list argument (ids, keys) is one parameter: an array for PostgreSQL, JSON text that the
  SQL reads with ``json_each`` for SQLite.
- A ``Table`` argument (pairs such as (channel, incident)) is a list of equal-width tuples:
  PostgreSQL takes one array per column (``unnest($1::text[], $2::bigint[])``), SQLite one
  JSON array of arrays (``json_each(?1)`` with ``value ->> 0``, ``value ->> 1``).
- ``apply`` runs a statement once per row and says how many rows it changed: SQLite runs
  it per row, PostgreSQL once over column arrays (an ``UPDATE ... FROM unnest(...)
  RETURNING``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar

from receiver.store.queues import Queue

T = TypeVar("T")
Row = Sequence[Any]


@dataclass(frozen=True)
class Table:
    """Rows of equal width passed as one argument (see the module's conventions)."""

    rows: Sequence[tuple[Any, ...]]


@dataclass(frozen=True)
class Statements:
    """Every statement the core runs, by name; each backend supplies all of them."""

    # Incidents and their rows, written by a unit of work.
    insert_incident: str  # id, incident_values, source
    update_incidents: str  # apply: incident_values, id, version read; changes only if same
    upsert_alert: str  # alert_values
    insert_event: str  # incident_id, at, event, data
    advance_schedule: str  # new next_at, name, next_at read -> rows changed
    # Outbox queues: the newest waiting row of each queue, releasing, folding, inserting.
    waiting: (
        str  # Table (channel, incident or 0) -> id, channel, incident, incident_id, kind, payload
    )
    release: str  # at, Table (channel, incident or 0)
    set_payload: str  # payload, id
    insert_outbox: str  # incident_id, channel, kind, payload, created_at, next_attempt_at
    # Claims and what became of them.
    claimable: str  # at, channel or NULL -> a row if any is claimable
    claim_outbox: str  # at, limit, claimed_until, channel or NULL -> OUTBOX_ITEM rows
    finish_sent: str  # at, id
    finish_retry: str  # next_attempt_at, error, id
    finish_dead: str  # at, error, id
    finish_release: str  # id
    retry_dead: str  # at, id -> rows changed: a dead row pending again (none unless dead)
    set_jira_key: str  # key, incident_id
    add_slack_message: str  # incident_id, channel_id, ts, purpose
    # Timers.
    cancel_timers: str  # at, [incident ids]
    fire_timers: str  # at, [timer ids] -> ids fired
    insert_timer: str  # incident_id, kind, step, trigger_at, due_at; a pending twin is kept
    timers_due: str  # at -> a row if any is due
    claim_timers: str  # at, limit, claimed_until -> timer rows
    # Schedules.
    schedule: str  # name -> next_at
    add_schedule: str  # name, next_at; kept if the schedule exists
    # Heartbeats.
    heartbeat_seen: str  # name, at; last_seen only ever moves forward
    heartbeat_missed: str  # missed_at or NULL, name
    heartbeats: str  # -> name, last_seen, missed_at
    # The console's passwords.
    set_password: str  # person, hash, set_at; replaces the person's
    password: str  # person -> hash, set_at
    # Beta-tester reports.
    insert_report: str  # REPORT_COLUMNS
    insert_attachment: str  # incident_id, n, filename, content_type, data
    find_report: str  # dedup_key, since -> incident_id, reference of the newest
    get_report: str  # incident_id -> REPORT_COLUMNS
    report_attachments: str  # incident_id -> filename, content_type, data in order
    report_of_reference: str  # reference -> incident_id
    # E-mails taken from the mailbox.
    insert_mail: str  # mailbox, uidvalidity, uid, message_id, incident_id, outcome, taken_at
    mail_last_uid: str  # mailbox, uidvalidity -> the highest uid taken (or NULL)
    mail_known: str  # [message ids] -> message_id, incident_id of those taken
    # Links of incidents into others.
    upsert_link: str  # incident_id, target_id, linked_at, linked_by
    linked_open: str  # [target ids] -> target_id, INCIDENT_COLUMNS of open ones linked in
    link_of: str  # incident_id -> target_id
    # Reads.
    latest: str  # [keys] -> INCIDENT_COLUMNS of the newest incident of each key
    known_alerts: str  # Table (incident_id, fingerprint) -> ALERT_COLUMNS
    installation: str
    jira_keys: str  # [ids] -> id, jira_key
    slack_messages: str  # [ids] -> incident_id, channel_id, ts, purpose in recorded order
    get_incident: str  # id
    incident_alerts: str  # [ids], limit or NULL -> ALERT_COLUMNS in incident, first-seen order
    alert_counts: str  # [ids] -> incident_id, count
    timeline: str  # incident_id -> at, event, data
    digest_incidents: str  # since
    # Maintenance windows made through the API.
    insert_maintenance: str  # matchers, starts_at, ends_at, reason, created_by, at -> id
    maintenance_windows: str  # after -> MAINTENANCE_COLUMNS of those ending after it
    get_maintenance: str  # id -> MAINTENANCE_COLUMNS
    end_maintenance: str  # at, by, id -> rows changed (none if it had ended by then)
    held_by: str  # window name -> INCIDENT_COLUMNS of the open incidents it holds
    open_counts: str
    outbox_stats: str
    # Row locks in id order before updating several incidents ([ids]), where the backend
    # has concurrent writers; None where it has one writer.
    lock_incidents: str | None = None

    @classmethod
    def names(cls) -> list[str]:
        """Every statement's name."""
        return [f.name for f in fields(cls)]


class Executor(Protocol):
    """Runs statements on one connection (in a transaction, or for quick reads)."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """The rows a statement returns."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row."""

    async def apply(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run a statement for every row; how many rows it changed in all."""


Body = Callable[[Executor], Awaitable[T]]


class Backend(Protocol):
    """A database and its driver, as the store core uses it."""

    sql: Statements
    rows_per_call: int  # rows per statement, and list items per argument, at most

    def param(self, n: int) -> str:
        """The n-th (from 1) parameter's placeholder, for filters built at run time."""

    async def open(self) -> None:
        """Connect and migrate the schema; raises StoreUnavailable."""

    async def close(self) -> None:
        """Release connections."""

    def transaction(self, conflicts: bool = False) -> AbstractAsyncContextManager[Executor]:
        """A transaction, committed durably when the block ends without an exception and
        rolled back otherwise; with ``conflicts``, a violated constraint or a serialization
        failure is a Conflict, else every database error is StoreUnavailable."""

    async def run(self, body: Body[T], conflicts: bool = False) -> T:
        """``body`` in a transaction that, once started, ends as it would have even if
        the caller is cancelled meanwhile (the caller then hears of the cancel)."""

    def reading(self) -> AbstractAsyncContextManager[Executor]:
        """Quick reads that decisions and claims wait on, outside any transaction."""

    async def query(self, sql: str, *args: Any) -> list[Row]:
        """A read for the API, off the writer's path where the backend has one."""

    async def reserve_incident_ids(self, count: int) -> list[int]:
        """See Store.reserve_incident_ids."""

    async def lock_queues(self, ex: Executor, queues: Collection[Queue]) -> None:
        """Before a transaction reads and writes these outbox queues: make concurrent
        writers of the same queues take turns (nothing to do with one writer)."""
