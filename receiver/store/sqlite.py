"""SQLite store: WAL with synchronous=FULL; one writer connection, aiosqlite for API reads.

The writer's statements are CPU work of microseconds, so they run on the event loop;
only the COMMIT, which waits for the disk, goes to a thread. A transaction thus costs one
hand-off however many statements it holds, and the loop never blocks on the disk or on
a lock held by another process (BEGIN is retried asynchronously up to busy_timeout).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from types import GeneratorType
from typing import Any, TypeVar

import aiosqlite

from receiver.domain.delivery import Prior
from receiver.domain.escalation import Timer
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.notifications import merge_payloads
from receiver.jsonfast import dumps, loads
from receiver.pacing import Pacer
from receiver.store.base import (
    Conflict,
    Delivery,
    DeliveryOutcome,
    Effect,
    NewNotification,
    OutboxItem,
    PartWriter,
    StoreUnavailable,
    UnitOfWork,
)
from receiver.store.rows import (
    ALERT_COLUMNS,
    ALERT_COLUMNS_OF_A,
    DELIVERY_COLUMNS,
    INCIDENT_COLUMNS,
    OPEN_COUNTS,
    OUTBOX_STATS,
    alert_from_row,
    alert_values,
    delivery_from_row,
    event_from_row,
    incident_from_row,
    incident_values,
    open_counts_of,
    outbox_stats_of,
    timer_from_row,
    ts,
    utc,
)
from receiver.store.schema import SQLITE_MIGRATIONS

CHUNK = 500  # keeps IN (...) lists under SQLite's variable limit
# Between two chances for the loop to run: rows built and written by one executemany, and
# statements of their own (an incident, an outbox row); each step takes a few milliseconds.
ROWS_PER_STEP = 1000
STATEMENTS_PER_STEP = 200
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = CHUNK) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


_LATEST = (
    f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id IN "
    "(SELECT max(id) FROM incidents WHERE key IN ({marks}) GROUP BY key)"
)
# The stored alerts among (incident id, fingerprint) pairs: one index probe per pair.
_KNOWN_ALERTS = (
    f"SELECT {ALERT_COLUMNS_OF_A} FROM (VALUES {{pairs}}) AS wanted "
    "JOIN alerts a ON a.incident_id = wanted.column1 AND a.fingerprint = wanted.column2"
)
_UPDATE_INCIDENT = (
    "UPDATE incidents SET key=?, rule=?, severity=?, category=?, team=?, status=?, "
    "summary=?, group_labels=?, opened_at=?, triggered_at=?, first_starts_at=?, "
    "acknowledged_at=?, acknowledged_by=?, resolved_at=?, resolved_by=?, "
    "jira_key=coalesce(?, jira_key), "
    "firing_alerts=?, alertmanager_url=?, version=version + 1 WHERE id=? AND version=?"
)
# The key is the JIRA notifier's alone: writing it never conflicts with a decision.
_SET_JIRA_KEY = "UPDATE incidents SET jira_key = ? WHERE id = ?"
_ADD_SLACK_MESSAGE = (
    "INSERT INTO slack_messages (incident_id, channel_id, ts, purpose) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (channel_id, ts) DO NOTHING"
)
# With id NULL the database numbers the incident (AUTOINCREMENT: never an id used before).
_INSERT_INCIDENT = (
    "INSERT INTO incidents (id, key, rule, severity, category, team, status, summary, "
    "group_labels, opened_at, triggered_at, first_starts_at, acknowledged_at, "
    "acknowledged_by, resolved_at, resolved_by, jira_key, firing_alerts, alertmanager_url) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The id the database would give the next incident: above every id it ever handed out
# (sqlite_sequence) and every id stored (explicit ids of reserved incidents included).
_NEXT_ID = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'incidents'), 0), "
    "(SELECT coalesce(max(id), 0) FROM incidents)) + 1"
)
_UPSERT_ALERT = (
    f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status=excluded.status, "
    "severity=excluded.severity, labels=excluded.labels, "
    "annotations=excluded.annotations, starts_at=excluded.starts_at, "
    "ends_at=excluded.ends_at, generator_url=excluded.generator_url, "
    "last_seen=excluded.last_seen"
)
_CLAIMABLE = (
    "SELECT id, incident_id, channel, kind, payload, attempts, created_at, claims "
    "FROM outbox o "
    "WHERE status = 'pending' AND next_attempt_at <= :at "
    "AND (claimed_until IS NULL OR claimed_until < :at) "
    "AND (:channel IS NULL OR channel = :channel) "
    "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' "
    "AND p.channel = o.channel AND p.incident_id IS o.incident_id AND p.id < o.id) "
    "ORDER BY id LIMIT :limit"
)
# The newest pending row of an incident on a channel, if nobody holds a claim on it.
_WAITING = (
    "SELECT id, kind, payload FROM outbox WHERE id = (SELECT max(id) FROM outbox "
    "WHERE status = 'pending' AND channel = ? AND incident_id IS ?) "
    "AND attempts = 0 AND claims = 0 AND claimed_until IS NULL AND channel = ? AND incident_id IS ?"
)
_RELEASE = (
    "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND channel = ? "
    "AND incident_id IS ? AND attempts = 0 AND next_attempt_at > ?"
)
# Stored times come back rounded to microseconds: "still the time read" allows for that.
_ADVANCE_SCHEDULE = "UPDATE schedules SET next_at = ? WHERE name = ? AND abs(next_at - ?) < 0.001"
_FINISH = {
    "sent": "UPDATE outbox SET status = 'sent', done_at = ?, attempts = attempts + 1, "
    "claimed_until = NULL WHERE id = ?",
    "retry": "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
    "claimed_until = NULL WHERE id = ?",
    "dead": "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_at = ?, "
    "last_error = ?, claimed_until = NULL WHERE id = ?",
    "release": "UPDATE outbox SET claimed_until = NULL WHERE id = ? AND status = 'pending'",
}


class _Folds:
    """The payloads this writer last stored in waiting (coalescing) rows, parsed.

    Folding a notification into a waiting row reads the row's payload back; when the text
    read is exactly the text stored here, its parsed form is taken instead of parsing it
    again. The text is compared, never trusted: a row changed by anything else (another
    process, a transaction that did not commit) is parsed as read.
    """

    MAX_ROWS = 256

    def __init__(self) -> None:
        self._rows: dict[int, tuple[str, dict[str, Any]]] = {}

    def parsed(self, row_id: int, text: str) -> dict[str, Any]:
        known = self._rows.get(row_id)
        if known is not None and known[0] == text:
            return known[1]
        payload: dict[str, Any] = loads(text)
        return payload

    def stored(self, row_id: int, text: str, payload: dict[str, Any]) -> None:
        if len(self._rows) >= self.MAX_ROWS and row_id not in self._rows:
            self._rows.clear()
        self._rows[row_id] = (text, payload)


def _enqueue(
    db: sqlite3.Connection, folds: _Folds, incident_id: int | None, note: NewNotification, at: float
) -> None:
    """Insert an outbox row, folding it into a waiting one of its kind when it coalesces."""
    if note.coalesce_seconds > 0:
        waiting = db.execute(
            _WAITING, (note.channel, incident_id, note.channel, incident_id)
        ).fetchone()
        if waiting is not None and waiting[1] == note.kind:
            merged = merge_payloads(folds.parsed(waiting[0], waiting[2]), note.payload)
            text = dumps(merged)
            db.execute("UPDATE outbox SET payload = ? WHERE id = ?", (text, waiting[0]))
            folds.stored(waiting[0], text, merged)
            return
        due = at + note.coalesce_seconds
    else:
        # Whatever waits to be coalesced goes now, ahead of this row, in order.
        db.execute(_RELEASE, (at, note.channel, incident_id, at))
        due = at
    text = dumps(note.payload)
    row_id = db.execute(
        "INSERT INTO outbox (incident_id, channel, kind, payload, created_at, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (incident_id, note.channel, note.kind, text, at, due),
    ).lastrowid
    if note.coalesce_seconds > 0 and row_id is not None:
        folds.stored(row_id, text, note.payload)


class _Writer:
    """The one connection that writes; SqliteStore's lock keeps its use sequential."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        deadline = time.monotonic() + busy_timeout_ms / 1000
        for pragma in _PRAGMAS:
            while True:  # runs off the loop: sleeping here holds up nothing
                try:
                    self.db.execute(pragma)
                    break
                except sqlite3.OperationalError as exc:
                    # Switching a new file to WAL while another process opens it too can
                    # answer "locked" at once, without waiting on the busy timeout.
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
        self.folds = _Folds()
        # The first id this process has not reserved yet (0: none reserved). Reserving
        # writes nothing, so the database does not know of it: see fresh_id.
        self.reserved = 0

    def reserve(self, count: int) -> list[int]:
        """``count`` ids above both the database's next id and the ids reserved before."""
        first = max(self.reserved, self.db.execute(_NEXT_ID).fetchone()[0])
        self.reserved = first + count
        return list(range(first, first + count))

    def fresh_id(self) -> int | None:
        """The id for an incident that has none, inside a write transaction: None (the
        database numbers it) unless this process reserved ids the database would hand out
        again, then the first id beyond those."""
        if self.reserved and self.db.execute(_NEXT_ID).fetchone()[0] < self.reserved:
            self.reserved += 1  # never reset: a rollback may undo what the query saw
            return self.reserved - 1
        return None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            rollback(self.db)
            raise
        commit_durably(self.db)

    def migrate(self) -> None:
        # One write transaction from reading the version to the last script: two processes
        # opening a new database together take turns instead of both applying the scripts.
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            for version, script in enumerate(SQLITE_MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?)", (version,))

    def ingest_state(
        self,
        wanted: Mapping[str, Collection[str]],
        latest: dict[str, Incident],
        known: dict[int, dict[str, AlertRecord]],
    ) -> Iterator[None]:
        """Fill ``latest`` and ``known`` for the keys and fingerprints wanted, yielding
        between queries so that the loop may run."""
        for part in _chunks(list(wanted)):
            sql = _LATEST.format(marks=",".join("?" * len(part)))
            for row in self.db.execute(sql, part):
                latest[row[1]] = incident_from_row(row)
            yield
        known.update({i.id: {} for i in latest.values() if i.id is not None})
        pairs = [
            (incident.id, fp)
            for key, incident in latest.items()
            for fp in dict.fromkeys(wanted[key])
        ]
        for some in _chunks(pairs, CHUNK // 2):
            sql = _KNOWN_ALERTS.format(pairs=",".join(["(?, ?)"] * len(some)))
            for row in self.db.execute(sql, [v for pair in some for v in pair]):
                known[row[0]][row[1]] = alert_from_row(row)
            yield

    def write(self, unit: UnitOfWork, now: datetime, assigned: list[Incident]) -> Iterator[None]:
        """The statements of a unit of work, inside an open transaction, yielding between
        steps so that the loop may run; ``assigned`` gets the incidents that got their id
        (to undo if the transaction does not commit)."""
        db = self.db
        try:
            if unit.advance_schedule is not None:
                name, expected, following = unit.advance_schedule
                moved = db.execute(
                    _ADVANCE_SCHEDULE, (following.timestamp(), name, expected.timestamp())
                )
                if moved.rowcount != 1:
                    raise Conflict(f"schedule {name} was run meanwhile")
            for n, incident in enumerate(unit.incidents, 1):
                values = incident_values(incident)
                if incident.id is None:
                    incident.id = db.execute(_INSERT_INCIDENT, (self.fresh_id(), *values)).lastrowid
                    assigned.append(incident)
                elif incident.id in unit.new:  # a reserved id taken meanwhile: IntegrityError
                    db.execute(_INSERT_INCIDENT, (incident.id, *values))
                else:
                    updated = db.execute(_UPDATE_INCIDENT, (*values, incident.id, incident.version))
                    if updated.rowcount != 1:
                        raise Conflict(f"incident {incident.id} changed meanwhile")
                if n % STATEMENTS_PER_STEP == 0:
                    yield
            # Rows are built a step at a time: a huge unit never holds all of them at once.
            for alerts in _chunks(unit.alerts, ROWS_PER_STEP):
                db.executemany(_UPSERT_ALERT, [alert_values(i.id or 0, a) for i, a in alerts])
                yield
            for events in _chunks(unit.events, ROWS_PER_STEP):
                db.executemany(
                    "INSERT INTO timeline (incident_id, at, event, data) VALUES (?, ?, ?, ?)",
                    [(i.id, ts(e.at), e.event, dumps(e.data)) for i, e in events],
                )
                yield
            for n, (owner, note) in enumerate(unit.outbox, 1):
                _enqueue(db, self.folds, owner.id if owner else None, note, now.timestamp())
                if n % STATEMENTS_PER_STEP == 0:
                    yield
            for n, stopped in enumerate(unit.cancel_timers, 1):
                db.execute(
                    "UPDATE timers SET status = 'cancelled', done_at = ? "
                    "WHERE incident_id = ? AND status = 'pending'",
                    (now.timestamp(), stopped.id),
                )
                if n % STATEMENTS_PER_STEP == 0:
                    yield
            for n, timer_id in enumerate(unit.fired_timers, 1):
                done = db.execute(
                    "UPDATE timers SET status = 'fired', done_at = ? "
                    "WHERE id = ? AND status = 'pending'",
                    (now.timestamp(), timer_id),
                )
                if done.rowcount != 1:
                    raise Conflict(f"timer {timer_id} was handled meanwhile")
                if n % STATEMENTS_PER_STEP == 0:
                    yield
            for timers in _chunks(unit.timers, ROWS_PER_STEP):
                db.executemany(
                    "INSERT OR IGNORE INTO timers (incident_id, kind, step, trigger_at, due_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (owner.id, t.kind.value, t.step, ts(t.trigger), ts(t.due_at))
                        for owner, t in timers
                    ],
                )
                yield
        # Another open incident for the key appeared, or a reserved id was taken meanwhile.
        except sqlite3.IntegrityError as exc:
            _forget(assigned)
            raise Conflict(str(exc)) from exc
        except BaseException:  # GeneratorExit too: the caller gave up between two steps
            _forget(assigned)
            raise

    def has_claimable(self, at: float, channel: str | None) -> bool:
        query = {"at": at, "channel": channel, "limit": 1}
        return self.db.execute(_CLAIMABLE, query).fetchone() is not None

    def claim(
        self,
        at: float,
        limit: int,
        lease_seconds: float,
        finished: Sequence[DeliveryOutcome],
        channel: str | None,
    ) -> list[Any]:
        """Record outcomes and claim rows, inside an open transaction."""
        db = self.db
        for outcome in finished:
            error = (outcome.error or "")[:2000]
            if outcome.outcome == "sent":
                args: tuple[Any, ...] = (at, outcome.id)
            elif outcome.outcome == "retry":
                args = (ts(outcome.next_at), error, outcome.id)
            elif outcome.outcome == "release":
                args = (outcome.id,)
            else:
                args = (at, error, outcome.id)
            db.execute(_FINISH[outcome.outcome], args)
            record_effects(db, outcome.effects)
        query = {"at": at, "channel": channel, "limit": limit}
        rows = db.execute(_CLAIMABLE, query).fetchall() if limit else []
        db.executemany(
            "UPDATE outbox SET claimed_until = ?, claims = claims + 1 WHERE id = ?",
            [(at + lease_seconds, r[0]) for r in rows],
        )
        return rows


async def _paced(steps: Iterator[None]) -> None:
    """Run a body's steps, letting the loop run whenever a slice of them has taken its time."""
    pacer = Pacer()
    try:
        for _ in steps:
            if pacer.due():
                await pacer.pause()
    finally:
        if isinstance(steps, GeneratorType):
            steps.close()  # cancelled between two steps: the body undoes what it did


def record_effects(db: sqlite3.Connection, effects: Sequence[Effect]) -> None:
    """Write what deliveries did, in the transaction that records their outcomes."""
    for effect in effects:
        if effect.kind == "jira_key":
            db.execute(_SET_JIRA_KEY, (effect.values[0], effect.incident_id))
        elif effect.kind == "slack_message":
            db.execute(_ADD_SLACK_MESSAGE, (effect.incident_id, *effect.values))


def _forget(assigned: list[Incident]) -> None:
    for incident in assigned:
        incident.id = None


def rollback(db: sqlite3.Connection) -> None:
    """ROLLBACK unless SQLite already rolled back by itself (disk full, I/O error)."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def commit_durably(db: sqlite3.Connection) -> None:
    """COMMIT (run it off the event loop: it waits for the disk); a failed COMMIT is rolled
    back before it returns."""
    try:
        db.execute("COMMIT")
    except sqlite3.Error:
        rollback(db)
        raise


_PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON")


class _Parts:
    """A transaction of SqliteStore written part by part (the store's lock held)."""

    def __init__(self, writer: _Writer, now: datetime) -> None:
        self.writer = writer
        self.now = now

    async def write(self, unit: UnitOfWork) -> None:
        await _paced(self.writer.write(unit, self.now, []))


class SqliteStore:
    """The embedded default store."""

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._writer: _Writer | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    def _w(self) -> _Writer:
        if self._writer is None or self._executor is None:
            raise StoreUnavailable("store is not open")
        return self._writer

    async def _begin(self, writer: _Writer) -> None:
        """BEGIN IMMEDIATE, retried without blocking the loop while another process writes."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.001
        while True:
            try:
                writer.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _transaction(
        self, body: Callable[[_Writer], T], committed: Callable[[], None] = lambda: None
    ) -> T:
        """Run body's statements in a transaction and commit it durably off the loop.

        ``committed`` runs once the COMMIT is durable, even if the caller was cancelled
        while waiting for it, so objects never disagree with what was stored.
        """
        async with self._lock:
            writer = self._w()
            await self._begin(writer)
            try:
                result = body(writer)
                if isinstance(result, GeneratorType):  # statements in steps: the loop runs between
                    await _paced(result)
            except BaseException as exc:
                rollback(writer.db)
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
                raise
            await self._commit(writer, committed)
            return result

    async def _commit(self, writer: _Writer, committed: Callable[[], None]) -> None:
        """COMMIT off the loop, held (with the lock) until the disk answers even if the
        caller is cancelled meanwhile; ``committed`` runs once it is durable."""
        loop = asyncio.get_running_loop()
        committing = loop.run_in_executor(self._executor, commit_durably, writer.db)
        cancelled = False
        while not committing.done():
            try:
                await asyncio.shield(committing)
            except asyncio.CancelledError:
                cancelled = True
            except sqlite3.Error:
                break
        failure = committing.exception()
        if failure is None:
            committed()
        if cancelled:
            raise asyncio.CancelledError
        if failure is not None:
            raise StoreUnavailable(f"SQLite commit failed: {failure}") from failure

    @asynccontextmanager
    async def write_in_parts(self, now: datetime) -> AsyncIterator[PartWriter]:
        # The writer is held from the first part to the COMMIT: SQLite has one writer, and
        # the parts must read what the transaction wrote before them.
        async with self._lock:
            writer = self._w()
            await self._begin(writer)
            try:
                yield _Parts(writer, now)
            except BaseException as exc:
                rollback(writer.db)
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
                raise
            await self._commit(writer, lambda: None)

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")
        loop = asyncio.get_running_loop()
        try:
            # Opening and migrating may wait on locks: keep that off the loop.
            self._writer = await loop.run_in_executor(
                self._executor, _Writer, self.path, self.busy_timeout_ms
            )
            await loop.run_in_executor(self._executor, self._writer.migrate)
            # From now on BEGIN runs on the loop: it must not block, SqliteStore._begin waits.
            self._writer.db.execute("PRAGMA busy_timeout = 0")
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            # First: the pragmas below wait for another opener's migration to finish.
            await self._reader.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            for pragma in _PRAGMAS:
                await self._reader.execute(pragma)
        except (sqlite3.Error, StoreUnavailable) as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._executor is not None and self._writer is not None:
            writer = self._writer
            await asyncio.get_running_loop().run_in_executor(self._executor, writer.db.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._reader = self._writer = self._executor = None

    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreUnavailable("store is not open")
        return self._reader

    async def ping(self) -> None:
        await self._all("SELECT 1")

    async def installation_id(self) -> str:
        [(found,)] = await self._all("SELECT id FROM installation")
        return str(found)

    async def reserve_incident_ids(self, count: int) -> list[int]:
        if count <= 0:
            return []
        # A quick read, no write transaction (no fsync): another process on the file may
        # reserve the same ids, and the second commit inserting one raises Conflict.
        async with self._lock:
            try:
                return self._w().reserve(count)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite: {exc}") from exc

    async def prior_effects(self, incident_ids: Sequence[int]) -> dict[int, Prior]:
        if not incident_ids:
            return {}
        wanted = dumps(list(incident_ids))  # one parameter however many ids (json_each)
        keys = await self._all(
            "SELECT id, jira_key FROM incidents "
            "WHERE id IN (SELECT value FROM json_each(?)) AND jira_key IS NOT NULL",
            (wanted,),
        )
        messages: dict[int, list[tuple[str, str, str]]] = {}
        for row in await self._all(
            "SELECT incident_id, channel_id, ts, purpose FROM slack_messages "
            "WHERE incident_id IN (SELECT value FROM json_each(?)) ORDER BY rowid",
            (wanted,),
        ):
            messages.setdefault(row[0], []).append((row[1], row[2], row[3]))
        jira = {r[0]: r[1] for r in keys}
        return {i: Prior(jira.get(i), tuple(messages.get(i, ()))) for i in incident_ids}

    async def ingest_state(
        self, wanted: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Incident], dict[int, dict[str, AlertRecord]]]:
        latest: dict[str, Incident] = {}
        known: dict[int, dict[str, AlertRecord]] = {}
        async with self._lock:  # never between a transaction's statements and its COMMIT
            try:
                await _paced(self._w().ingest_state(wanted, latest, known))
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite: {exc}") from exc
        return latest, known

    async def commit(self, unit: UnitOfWork, now: datetime) -> None:
        assigned: list[Incident] = []
        durable = False

        def body(writer: _Writer) -> Iterator[None]:
            return writer.write(unit, now, assigned)

        def committed() -> None:
            nonlocal durable
            durable = True
            new = {id(a) for a in assigned}
            for incident in unit.incidents:
                if id(incident) not in new and incident.id not in unit.new:
                    incident.version += 1

        try:
            await self._transaction(body, committed)
        except BaseException:
            if not durable:
                _forget(assigned)
            raise

    async def claim_timers(self, now: datetime, limit: int, lease_seconds: float) -> list[Timer]:
        at = now.timestamp()
        due = (
            "SELECT id, incident_id, kind, step, trigger_at, due_at FROM timers "
            "WHERE status = 'pending' AND due_at <= ? "
            "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY due_at, id LIMIT ?"
        )
        async with self._lock:
            try:
                idle = not self._w().db.execute(due, (at, at, 1)).fetchone()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite: {exc}") from exc
        if idle:
            return []

        def claim(writer: _Writer) -> list[Any]:
            rows = writer.db.execute(due, (at, at, limit)).fetchall()
            writer.db.executemany(
                "UPDATE timers SET claimed_until = ? WHERE id = ?",
                [(at + lease_seconds, r[0]) for r in rows],
            )
            return rows

        rows = await self._transaction(claim)
        return [timer_from_row(r) for r in rows]

    async def claim_outbox(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        finished: Sequence[DeliveryOutcome] = (),
        channel: str | None = None,
    ) -> list[OutboxItem]:
        at = now.timestamp()
        if not finished:
            async with self._lock:
                try:
                    idle = not self._w().has_claimable(at, channel)
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
            if idle:
                return []  # an idle poll takes no write lock and forces no fsync
        rows = await self._transaction(
            lambda writer: writer.claim(at, limit, lease_seconds, finished, channel)
        )
        return [
            OutboxItem(r[0], r[1], r[2], r[3], loads(r[4]), r[5], utc(r[6]), r[7] + 1) for r in rows
        ]

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(await self._r().execute_fetchall(sql, args))
        except (sqlite3.Error, ValueError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def list_incidents(
        self, status: str | None, severity: str | None, limit: int, before: int | None
    ) -> list[Incident]:
        where: list[str] = ["1=1"]
        args: list[object] = []
        for column, value in (("status", status), ("severity", severity)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        rows = await self._all(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        return [incident_from_row(r) for r in rows]

    async def get_incident(self, incident_id: int) -> Incident | None:
        rows = await self._all(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
        )
        return incident_from_row(rows[0]) if rows else None

    async def incident_alerts(
        self, incident_ids: Sequence[int], limit_per_incident: int | None = None
    ) -> dict[int, list[AlertRecord]]:
        out: dict[int, list[AlertRecord]] = {i: [] for i in incident_ids}
        for part in _chunks(list(incident_ids)):
            marks = ",".join("?" * len(part))
            sql = (
                f"SELECT {ALERT_COLUMNS} FROM (SELECT *, row_number() OVER "
                "(PARTITION BY incident_id ORDER BY first_seen, fingerprint) AS n FROM alerts "
                f"WHERE incident_id IN ({marks})) WHERE ? IS NULL OR n <= ? ORDER BY incident_id, n"
            )
            for row in await self._all(sql, (*part, limit_per_incident, limit_per_incident)):
                out[row[0]].append(alert_from_row(row))
        return out

    async def alert_counts(self, incident_ids: Sequence[int]) -> dict[int, int]:
        out = dict.fromkeys(incident_ids, 0)
        for part in _chunks(list(incident_ids)):
            marks = ",".join("?" * len(part))
            sql = (
                f"SELECT incident_id, count(*) FROM alerts WHERE incident_id IN ({marks}) "
                "GROUP BY incident_id"
            )
            for incident_id, count in await self._all(sql, part):
                out[incident_id] = count
        return out

    async def timeline(self, incident_id: int) -> list[Event]:
        rows = await self._all(
            "SELECT at, event, data FROM timeline WHERE incident_id = ? ORDER BY id",
            (incident_id,),
        )
        return [event_from_row(r) for r in rows]

    async def open_counts(self) -> dict[tuple[str, str], int]:
        return open_counts_of(await self._all(OPEN_COUNTS))

    async def outbox_stats(self, now: datetime) -> tuple[int, float]:
        return outbox_stats_of((await self._all(OUTBOX_STATS))[0], now)

    async def deliveries(
        self, status: str | None, incident_id: int | None, limit: int
    ) -> list[Delivery]:
        where: list[str] = ["1=1"]
        args: list[object] = []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if incident_id is not None:
            where.append("incident_id = ?")
            args.append(incident_id)
        rows = await self._all(
            f"SELECT {DELIVERY_COLUMNS} FROM outbox WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        return [delivery_from_row(r) for r in rows]

    async def schedule_next(self, name: str, initial: datetime) -> datetime:
        sql = "SELECT next_at FROM schedules WHERE name = ?"
        rows = await self._all(sql, (name,))
        if not rows:

            def insert(writer: _Writer) -> list[Any]:
                writer.db.execute(
                    "INSERT OR IGNORE INTO schedules (name, next_at) VALUES (?, ?)",
                    (name, initial.timestamp()),
                )
                return writer.db.execute(sql, (name,)).fetchall()

            rows = await self._transaction(insert)
        return utc(rows[0][0])

    async def digest_incidents(self, since: datetime) -> list[Incident]:
        at = since.timestamp()
        rows = await self._all(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status != 'resolved' "
            "OR opened_at >= ? OR acknowledged_at >= ? OR resolved_at >= ? ORDER BY id",
            (at, at, at),
        )
        return [incident_from_row(r) for r in rows]
