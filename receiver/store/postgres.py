"""PostgreSQL store: an asyncpg pool shared by replicas; the database keeps them consistent.

Every write is one READ COMMITTED transaction. What two replicas could both do is decided
by the database, never by a lock in this process: incident updates are version-checked,
the partial unique index on open keys lets one of two simultaneous opens win, claims take
rows with ``FOR UPDATE SKIP LOCKED`` plus a lease, and enqueues for one (channel, incident)
queue hold a transaction-scoped advisory lock, so that queue's ids follow commit order and
a waiting row is folded into by one transaction at a time. Commits are as durable as the
server's ``synchronous_commit`` makes them (on, by default), and a commit succeeds or fails
as its COMMIT did on the server, not as the connection fared afterwards (``pgcommit``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from receiver.domain.delivery import Prior
from receiver.domain.escalation import Timer
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.notifications import merge_payloads
from receiver.jsonfast import dumps, loads
from receiver.store.base import (
    Conflict,
    Delivery,
    DeliveryOutcome,
    NewNotification,
    OutboxItem,
    PartWriter,
    StoreUnavailable,
    UnitOfWork,
)
from receiver.store.pgcommit import TRANSACTION_ID, commit, release, rollback
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
from receiver.store.schema import POSTGRES_MIGRATIONS

T = TypeVar("T")
Body = Callable[[Any], Awaitable[T]]

MIGRATION_LOCK = 0x72637672  # advisory lock class of schema migrations ("rcvr")

_LATEST = (
    f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id IN "
    "(SELECT max(id) FROM incidents WHERE key = ANY($1::text[]) GROUP BY key)"
)
# The stored alerts among (incident id, fingerprint) pairs: one index probe per pair.
_KNOWN_ALERTS = (
    f"SELECT {ALERT_COLUMNS_OF_A} FROM unnest($1::bigint[], $2::text[]) "
    "AS wanted (incident_id, fingerprint) "
    "JOIN alerts a ON a.incident_id = wanted.incident_id AND a.fingerprint = wanted.fingerprint"
)
_LOCK_INCIDENTS = (
    "SELECT id FROM incidents WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE"
)
# Ids for new incidents come from the sequence up front (sorted, so they follow the unit's
# order), and the inserts then go in batches.
_NEW_IDS = (
    "SELECT array_agg(nextval(pg_get_serial_sequence('incidents', 'id'))) "
    "FROM generate_series(1, $1)"
)
# Ids reserved ahead of a decision: nextval never hands them out again, committed or not.
_RESERVE_IDS = (
    "SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $1)"
)
_INSERT_INCIDENT = (
    "INSERT INTO incidents (id, key, rule, severity, category, team, status, summary, "
    "group_labels, opened_at, triggered_at, first_starts_at, acknowledged_at, "
    "acknowledged_by, resolved_at, resolved_by, jira_key, firing_alerts, alertmanager_url) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
    "$19)"
)
# Several incidents' updates in one statement; the ids returned are those whose version
# was still the one read.
_UPDATE_INCIDENTS = (
    "UPDATE incidents AS i SET key = u.key, rule = u.rule, severity = u.severity, "
    "category = u.category, team = u.team, status = u.status, summary = u.summary, "
    "group_labels = u.group_labels, opened_at = u.opened_at, triggered_at = u.triggered_at, "
    "first_starts_at = u.first_starts_at, acknowledged_at = u.acknowledged_at, "
    "acknowledged_by = u.acknowledged_by, resolved_at = u.resolved_at, "
    "resolved_by = u.resolved_by, jira_key = coalesce(u.jira_key, i.jira_key), "
    "firing_alerts = u.firing_alerts, "
    "alertmanager_url = u.alertmanager_url, version = i.version + 1 "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], "
    "$13::text[], $14::float8[], $15::text[], $16::text[], $17::int[], $18::text[], "
    "$19::bigint[], $20::int[]) AS u (key, rule, severity, category, team, status, summary, "
    "group_labels, opened_at, triggered_at, first_starts_at, acknowledged_at, "
    "acknowledged_by, resolved_at, resolved_by, jira_key, firing_alerts, alertmanager_url, "
    "id, version) "
    "WHERE i.id = u.id AND i.version = u.version RETURNING i.id"
)
_UPSERT_ALERT = (
    f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
    "ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status=excluded.status, "
    "severity=excluded.severity, labels=excluded.labels, "
    "annotations=excluded.annotations, starts_at=excluded.starts_at, "
    "ends_at=excluded.ends_at, generator_url=excluded.generator_url, "
    "last_seen=excluded.last_seen"
)
_INSERT_EVENT = "INSERT INTO timeline (incident_id, at, event, data) VALUES ($1, $2, $3, $4)"
# Every enqueue holds the schema's queues lock shared and its queues' own locks; a unit with
# more queues than the server's lock table should hold for one transaction holds the queues
# lock alone, exclusively (it waits for and excludes every other enqueue meanwhile).
_LOCK_QUEUES = (
    "SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock(k) "
    "FROM unnest($2::bigint[]) AS k"
)
_LOCK_ALL_QUEUES = "SELECT pg_advisory_xact_lock($1)"
# PostgreSQL's lock table holds max_locks_per_transaction (64 by default) per connection.
MAX_QUEUE_LOCKS = 32
# The newest pending row of each queue, if nobody holds a claim on it; locked so that a
# claim cannot take it between the fold and the commit.
_WAITING = (
    "SELECT o.id, q.channel, q.incident, o.incident_id, o.kind, o.payload "
    "FROM unnest($1::text[], $2::bigint[]) AS q (channel, incident) "
    "JOIN outbox o ON o.id = (SELECT max(p.id) FROM outbox p WHERE p.status = 'pending' "
    "AND p.channel = q.channel AND coalesce(p.incident_id, 0) = q.incident) "
    "WHERE o.status = 'pending' AND o.attempts = 0 AND o.claims = 0 AND o.claimed_until IS NULL "
    "FOR UPDATE OF o"
)
_RELEASE = (
    "UPDATE outbox o SET next_attempt_at = $1 "
    "FROM unnest($2::text[], $3::bigint[]) AS q (channel, incident) "
    "WHERE o.status = 'pending' AND o.channel = q.channel "
    "AND coalesce(o.incident_id, 0) = q.incident AND o.attempts = 0 AND o.next_attempt_at > $1"
)
_INSERT_OUTBOX = (
    "INSERT INTO outbox (incident_id, channel, kind, payload, created_at, next_attempt_at) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
_CANCEL_TIMERS = (
    "UPDATE timers SET status = 'cancelled', done_at = $1 "
    "WHERE incident_id = ANY($2::bigint[]) AND status = 'pending'"
)
_FIRE_TIMERS = (
    "UPDATE timers SET status = 'fired', done_at = $1 "
    "WHERE id = ANY($2::bigint[]) AND status = 'pending' RETURNING id"
)
_INSERT_TIMER = (
    "INSERT INTO timers (incident_id, kind, step, trigger_at, due_at) "
    "VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (incident_id, kind, step, trigger_at) WHERE status = 'pending' DO NOTHING"
)
# A row is claimable only while no older row of its queue is pending: one locked or leased
# by another claim still counts, so SKIP LOCKED never lets a younger row overtake it.
_CLAIM_OUTBOX = (
    "WITH claimable AS (SELECT id FROM outbox o "
    "WHERE status = 'pending' AND next_attempt_at <= $1 "
    "AND (claimed_until IS NULL OR claimed_until < $1) AND ($4::text IS NULL OR channel = $4) "
    "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' "
    "AND p.channel = o.channel AND coalesce(p.incident_id, 0) = coalesce(o.incident_id, 0) "
    "AND p.id < o.id) "
    "ORDER BY id LIMIT $2 FOR UPDATE OF o SKIP LOCKED) "
    "UPDATE outbox SET claimed_until = $3, claims = outbox.claims + 1 FROM claimable "
    "WHERE outbox.id = claimable.id "
    "RETURNING outbox.id, incident_id, channel, kind, payload, attempts, created_at, claims"
)
_FINISH = {
    "sent": "UPDATE outbox SET status = 'sent', done_at = $1, attempts = attempts + 1, "
    "claimed_until = NULL WHERE id = $2",
    "retry": "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, "
    "last_error = $2, claimed_until = NULL WHERE id = $3",
    "dead": "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_at = $1, "
    "last_error = $2, claimed_until = NULL WHERE id = $3",
    "release": "UPDATE outbox SET claimed_until = NULL WHERE id = $1 AND status = 'pending'",
}
# The key is the JIRA notifier's alone: writing it never conflicts with a decision.
_SET_JIRA_KEY = "UPDATE incidents SET jira_key = $1 WHERE id = $2"
_ADD_SLACK_MESSAGE = (
    "INSERT INTO slack_messages (incident_id, channel_id, ts, purpose) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
)
_CLAIM_TIMERS = (
    "WITH due AS (SELECT id FROM timers WHERE status = 'pending' AND due_at <= $1 "
    "AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY due_at, id LIMIT $2 "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE timers t SET claimed_until = $3 FROM due WHERE t.id = due.id "
    "RETURNING t.id, t.incident_id, t.kind, t.step, t.trigger_at, t.due_at"
)
# Stored times come back rounded to microseconds: "still the time read" allows for that.
_ADVANCE_SCHEDULE = (
    "UPDATE schedules SET next_at = $1 WHERE name = $2 AND abs(next_at - $3) < 0.001"
)
_INCIDENT_ALERTS = (
    f"SELECT {ALERT_COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY incident_id "
    'ORDER BY first_seen, fingerprint COLLATE "C") AS n FROM alerts '
    "WHERE incident_id = ANY($1::bigint[])) a "
    "WHERE $2::bigint IS NULL OR n <= $2::bigint ORDER BY incident_id, n"
)

# Raised by the connection or the server for reasons that a later attempt may not meet.
_UNAVAILABLE = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def _where(url: str) -> str:
    """The server and database of a URL, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"


@contextmanager
def _errors(conflicts: bool) -> Iterator[None]:
    """Database errors as Conflict (decide again) or StoreUnavailable (try later)."""
    try:
        yield
    except (Conflict, StoreUnavailable):
        raise
    except (
        asyncpg.IntegrityConstraintViolationError,
        asyncpg.TransactionRollbackError,  # serialization failure, deadlock
    ) as exc:
        if conflicts:
            raise Conflict(f"PostgreSQL: {exc}") from exc
        raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


def _forget(assigned: list[Incident]) -> None:
    for incident in assigned:
        incident.id = None


async def _ingest_state(
    fetch: Callable[..., Awaitable[list[Any]]], wanted: Mapping[str, Collection[str]]
) -> tuple[dict[str, Incident], dict[int, dict[str, AlertRecord]]]:
    """The open incidents of the keys wanted and their alerts among the fingerprints wanted."""
    latest: dict[str, Incident] = {}
    if wanted:
        for row in await fetch(_LATEST, list(wanted)):
            latest[row[1]] = incident_from_row(row)
    known: dict[int, dict[str, AlertRecord]] = {
        i.id: {} for i in latest.values() if i.id is not None
    }
    ids, fps = [], []
    for key, incident in latest.items():
        for fp in dict.fromkeys(wanted[key]):
            ids.append(incident.id)
            fps.append(fp)
    if ids:
        for row in await fetch(_KNOWN_ALERTS, ids, fps):
            known[row[0]][row[1]] = alert_from_row(row)
    return latest, known


class _Parts:
    """A transaction of PostgresStore written part by part, on one connection."""

    def __init__(self, store: PostgresStore, conn: Any, now: datetime) -> None:
        self.store = store
        self.conn = conn
        self.now = now

    async def write(self, unit: UnitOfWork) -> None:
        await self.store._write(self.conn, unit, self.now.timestamp(), [])


class PostgresStore:
    """The store several replicas share; ``schema``, if given, must exist and becomes the
    search path of every connection."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float | None = 30.0,
    ) -> None:
        self.url = url
        self.schema = schema
        self.min_connections = min_connections
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: Any = None
        # The schema the connections work in, however it was chosen (``schema`` or a
        # search_path in the URL): queue locks of two schemas on one server never meet.
        # The default schema keeps the empty scope that earlier versions used for every
        # schema, so that replicas of both versions exclude each other during an upgrade.
        self._lock_scope = schema or ""

    def _p(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        return self._pool

    def _queue_key(self, channel: str, incident_id: int | None) -> int:
        """The advisory lock of one (channel, incident) queue of this schema."""
        name = f"{self._lock_scope}\0{channel}\0{incident_id or 0}".encode()
        return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)

    async def open(self) -> None:
        settings: dict[str, str] = {}
        if self.schema is not None:
            settings["search_path"] = '"' + self.schema.replace('"', '""') + '"'
        try:
            with _errors(conflicts=False):
                self._pool = await asyncpg.create_pool(
                    self.url,
                    min_size=self.min_connections,
                    max_size=self.max_connections,
                    timeout=self.connect_timeout,
                    command_timeout=self.command_timeout,
                    server_settings=settings,
                )
                async with self._pool.acquire() as conn:
                    await self._migrate(conn)
                    if self.schema is None:
                        current = await conn.fetchval("SELECT current_schema()")
                        self._lock_scope = "" if current in (None, "public") else current
        except (StoreUnavailable, ValueError) as exc:
            await self.close()
            raise StoreUnavailable(
                f"cannot open PostgreSQL database {_where(self.url)}: {exc}"
            ) from exc

    @staticmethod
    async def _migrate(conn: Any) -> None:
        """Apply missing migrations in one transaction; concurrent openers wait their turn."""
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))",
                MIGRATION_LOCK,
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            for version, script in enumerate(POSTGRES_MIGRATIONS, start=1):
                if version > current:
                    await conn.execute(script)
                    await conn.execute("INSERT INTO schema_version VALUES ($1)", version)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:  # waits for connections in use to be released
            await asyncio.wait_for(pool.close(), self.connect_timeout)
        except TimeoutError:
            pool.terminate()

    async def _run(self, body: Body[T], committed: Callable[[], None], conflicts: bool) -> T:
        pool = self._p()
        with _errors(conflicts):
            conn = await pool.acquire()
        try:
            with _errors(conflicts):
                transaction = conn.transaction(isolation="read_committed")
                await transaction.start()
                try:
                    result = await body(conn)
                    transaction_id = await conn.fetchval(TRANSACTION_ID)
                except BaseException:
                    await rollback(transaction)
                    raise
                await commit(conn, transaction, transaction_id, self._connect)
            committed()
            return result
        finally:
            await release(pool, conn)  # a failure here cannot undo the COMMIT

    async def _connect(self) -> Any:
        """A connection of its own, outside the pool (whose connections may all be dead)."""
        return await asyncpg.connect(
            self.url, timeout=self.connect_timeout, command_timeout=self.command_timeout
        )

    async def _transaction(
        self, body: Body[T], committed: Callable[[], None] = lambda: None, conflicts: bool = False
    ) -> T:
        """Run body in a transaction that finishes even if the caller is cancelled meanwhile.

        ``committed`` runs once the COMMIT is durable, so objects never disagree with what
        was stored; a cancelled caller then sees CancelledError.
        """
        task = asyncio.ensure_future(self._run(body, committed, conflicts))
        cancelled = False
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            if not task.cancelled():
                task.exception()  # retrieved: the caller hears of the cancel instead
            raise asyncio.CancelledError
        return task.result()

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        with _errors(conflicts=False):
            return list(await self._p().fetch(sql, *args))

    async def ping(self) -> None:
        await self._all("SELECT 1")

    async def installation_id(self) -> str:
        [(found,)] = await self._all("SELECT id FROM installation")
        return str(found)

    async def reserve_incident_ids(self, count: int) -> list[int]:
        if count <= 0:
            return []
        return sorted(r[0] for r in await self._all(_RESERVE_IDS, count))

    async def prior_effects(self, incident_ids: Sequence[int]) -> dict[int, Prior]:
        if not incident_ids:
            return {}
        wanted = list(incident_ids)
        keys = await self._all(
            "SELECT id, jira_key FROM incidents "
            "WHERE id = ANY($1::bigint[]) AND jira_key IS NOT NULL",
            wanted,
        )
        messages: dict[int, list[tuple[str, str, str]]] = {}
        for row in await self._all(
            "SELECT incident_id, channel_id, ts, purpose FROM slack_messages "
            "WHERE incident_id = ANY($1::bigint[]) ORDER BY id",
            wanted,
        ):
            messages.setdefault(row[0], []).append((row[1], row[2], row[3]))
        jira = {r[0]: r[1] for r in keys}
        return {i: Prior(jira.get(i), tuple(messages.get(i, ()))) for i in incident_ids}

    async def ingest_state(
        self, wanted: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Incident], dict[int, dict[str, AlertRecord]]]:
        self._p()  # a closed store is unavailable even when there is nothing to look up
        return await _ingest_state(self._all, wanted)

    @asynccontextmanager
    async def write_in_parts(self, now: datetime) -> AsyncIterator[PartWriter]:
        pool = self._p()
        with _errors(conflicts=True):
            conn = await pool.acquire()
        try:
            with _errors(conflicts=True):
                transaction = conn.transaction(isolation="read_committed")
                await transaction.start()
                try:
                    yield _Parts(self, conn, now)
                    transaction_id = await conn.fetchval(TRANSACTION_ID)
                except BaseException:
                    await rollback(transaction)
                    raise
                # the COMMIT finishes, and is settled, even if the caller is cancelled
                await asyncio.shield(commit(conn, transaction, transaction_id, self._connect))
        finally:
            await release(pool, conn)

    async def commit(self, unit: UnitOfWork, now: datetime) -> None:
        assigned: list[Incident] = []
        durable = False

        async def body(conn: Any) -> None:
            await self._write(conn, unit, now.timestamp(), assigned)

        def committed() -> None:
            nonlocal durable
            durable = True
            new = {id(a) for a in assigned}
            for incident in unit.incidents:
                if id(incident) not in new and incident.id not in unit.new:
                    incident.version += 1

        try:
            await self._transaction(body, committed, conflicts=True)
        except BaseException:
            if not durable:
                _forget(assigned)
            raise

    async def _write(
        self, conn: Any, unit: UnitOfWork, at: float, assigned: list[Incident]
    ) -> None:
        """The statements of a unit of work, inside its transaction."""
        if unit.advance_schedule is not None:
            name, expected, following = unit.advance_schedule
            moved = await conn.execute(
                _ADVANCE_SCHEDULE, following.timestamp(), name, expected.timestamp()
            )
            if moved != "UPDATE 1":
                raise Conflict(f"schedule {name} was run meanwhile")
        updated = [i.id for i in unit.incidents if i.id is not None and i.id not in unit.new]
        if len(updated) > 1:  # row locks in one order, so two units never deadlock on them
            await conn.execute(_LOCK_INCIDENTS, updated)
        fresh = sum(1 for i in unit.incidents if i.id is None)
        new_ids = iter(sorted(await conn.fetchval(_NEW_IDS, fresh)) if fresh else [])
        # Runs of inserts and of updates go in unit order: an incident resolved before its
        # key opens again must be stored resolved first (one open incident per key).
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        for incident in unit.incidents:
            values = incident_values(incident)
            # A reserved id (in unit.new) is inserted as it is; taken meanwhile, the insert
            # violates the primary key: Conflict.
            if incident.id is None or incident.id in unit.new:
                await _update_incidents(conn, updates)
                if incident.id is None:
                    incident.id = next(new_ids)
                    assigned.append(incident)
                inserts.append((incident.id, *values))
            else:
                if inserts:
                    await conn.executemany(_INSERT_INCIDENT, inserts)
                    inserts = []
                updates.append((*values, incident.id, incident.version))
        await _update_incidents(conn, updates)
        if inserts:
            await conn.executemany(_INSERT_INCIDENT, inserts)
        if unit.alerts:
            await conn.executemany(
                _UPSERT_ALERT, [alert_values(i.id or 0, a) for i, a in unit.alerts]
            )
        if unit.events:
            await conn.executemany(
                _INSERT_EVENT, [(i.id, ts(e.at), e.event, dumps(e.data)) for i, e in unit.events]
            )
        if unit.outbox:
            queues = {self._queue_key(n.channel, o.id if o else None) for o, n in unit.outbox}
            every = self._queue_key("*", None)  # no channel is named "*"
            if len(queues) > MAX_QUEUE_LOCKS:
                await conn.execute(_LOCK_ALL_QUEUES, every)
            else:
                await conn.execute(_LOCK_QUEUES, every, sorted(queues))
            await _enqueue(conn, [(o.id if o else None, n) for o, n in unit.outbox], at)
        if unit.cancel_timers:
            await conn.execute(_CANCEL_TIMERS, at, [i.id for i in unit.cancel_timers])
        if unit.fired_timers:
            fired = await conn.fetch(_FIRE_TIMERS, at, unit.fired_timers)
            if len(fired) != len(unit.fired_timers):
                missing = sorted(set(unit.fired_timers) - {r[0] for r in fired})
                raise Conflict(f"timers {missing or unit.fired_timers} were handled meanwhile")
        if unit.timers:
            await conn.executemany(
                _INSERT_TIMER,
                [
                    (owner.id, t.kind.value, t.step, ts(t.trigger), ts(t.due_at))
                    for owner, t in unit.timers
                ],
            )

    async def claim_timers(self, now: datetime, limit: int, lease_seconds: float) -> list[Timer]:
        at = now.timestamp()

        async def claim(conn: Any) -> list[Any]:
            return list(await conn.fetch(_CLAIM_TIMERS, at, limit, at + lease_seconds))

        rows = await self._transaction(claim)
        timers = [timer_from_row(r) for r in rows]
        return sorted(timers, key=lambda t: (t.due_at, t.id or 0))

    async def claim_outbox(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        finished: Sequence[DeliveryOutcome] = (),
        channel: str | None = None,
    ) -> list[OutboxItem]:
        at = now.timestamp()

        async def claim(conn: Any) -> list[Any]:
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
                await conn.execute(_FINISH[outcome.outcome], *args)
                for effect in outcome.effects:
                    if effect.kind == "jira_key":
                        await conn.execute(_SET_JIRA_KEY, effect.values[0], effect.incident_id)
                    elif effect.kind == "slack_message":
                        await conn.execute(_ADD_SLACK_MESSAGE, effect.incident_id, *effect.values)
            if not limit:
                return []
            return list(await conn.fetch(_CLAIM_OUTBOX, at, limit, at + lease_seconds, channel))

        rows = sorted(await self._transaction(claim), key=lambda r: int(r[0]))
        return [
            OutboxItem(r[0], r[1], r[2], r[3], loads(r[4]), r[5], utc(r[6]), r[7]) for r in rows
        ]

    async def list_incidents(
        self, status: str | None, severity: str | None, limit: int, before: int | None
    ) -> list[Incident]:
        where: list[str] = ["TRUE"]
        args: list[object] = []
        for condition, value in (("status =", status), ("severity =", severity), ("id <", before)):
            if value is not None:
                args.append(value)
                where.append(f"{condition} ${len(args)}")
        rows = await self._all(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {' AND '.join(where)} "
            f"ORDER BY id DESC LIMIT ${len(args) + 1}",
            *args,
            limit,
        )
        return [incident_from_row(r) for r in rows]

    async def get_incident(self, incident_id: int) -> Incident | None:
        rows = await self._all(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1", incident_id
        )
        return incident_from_row(rows[0]) if rows else None

    async def incident_alerts(
        self, incident_ids: Sequence[int], limit_per_incident: int | None = None
    ) -> dict[int, list[AlertRecord]]:
        out: dict[int, list[AlertRecord]] = {i: [] for i in incident_ids}
        if incident_ids:
            for row in await self._all(_INCIDENT_ALERTS, list(incident_ids), limit_per_incident):
                out[row[0]].append(alert_from_row(row))
        return out

    async def alert_counts(self, incident_ids: Sequence[int]) -> dict[int, int]:
        out = dict.fromkeys(incident_ids, 0)
        if incident_ids:
            rows = await self._all(
                "SELECT incident_id, count(*) FROM alerts WHERE incident_id = ANY($1::bigint[]) "
                "GROUP BY incident_id",
                list(incident_ids),
            )
            for incident_id, count in rows:
                out[incident_id] = count
        return out

    async def timeline(self, incident_id: int) -> list[Event]:
        rows = await self._all(
            "SELECT at, event, data FROM timeline WHERE incident_id = $1 ORDER BY id",
            incident_id,
        )
        return [event_from_row(r) for r in rows]

    async def open_counts(self) -> dict[tuple[str, str], int]:
        return open_counts_of(await self._all(OPEN_COUNTS))

    async def outbox_stats(self, now: datetime) -> tuple[int, float]:
        return outbox_stats_of((await self._all(OUTBOX_STATS))[0], now)

    async def deliveries(
        self, status: str | None, incident_id: int | None, limit: int
    ) -> list[Delivery]:
        where: list[str] = ["TRUE"]
        args: list[object] = []
        for column, value in (("status", status), ("incident_id", incident_id)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        rows = await self._all(
            f"SELECT {DELIVERY_COLUMNS} FROM outbox WHERE {' AND '.join(where)} "
            f"ORDER BY id DESC LIMIT ${len(args) + 1}",
            *args,
            limit,
        )
        return [delivery_from_row(r) for r in rows]

    async def schedule_next(self, name: str, initial: datetime) -> datetime:
        sql = "SELECT next_at FROM schedules WHERE name = $1"
        rows = await self._all(sql, name)
        if not rows:

            async def insert(conn: Any) -> list[Any]:
                await conn.execute(
                    "INSERT INTO schedules (name, next_at) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO NOTHING",
                    name,
                    initial.timestamp(),
                )
                return list(await conn.fetch(sql, name))  # a new snapshot: sees either insert

            rows = await self._transaction(insert)
        return utc(rows[0][0])

    async def digest_incidents(self, since: datetime) -> list[Incident]:
        rows = await self._all(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status != 'resolved' "
            "OR opened_at >= $1 OR acknowledged_at >= $1 OR resolved_at >= $1 ORDER BY id",
            since.timestamp(),
        )
        return [incident_from_row(r) for r in rows]


@dataclass
class _Row:
    """An outbox row as a unit's notifications leave it: new, or waiting and folded into."""

    incident_id: int | None
    channel: str
    kind: str
    payload: dict[str, Any]
    due: float
    id: int | None = None  # stored before this unit


async def _update_incidents(conn: Any, updates: list[tuple[Any, ...]]) -> None:
    """Store incidents' new fields (each ``incident_values`` + id + version read) at once;
    raises Conflict if any was changed meanwhile. Empties the list."""
    if not updates:
        return
    columns = [list(column) for column in zip(*updates, strict=True)]
    done = {r[0] for r in await conn.fetch(_UPDATE_INCIDENTS, *columns)}
    changed = [u[-2] for u in updates if u[-2] not in done]
    updates.clear()
    if changed:
        raise Conflict(f"incidents {changed[:10]} changed meanwhile")


async def _enqueue(
    conn: Any, notes: Sequence[tuple[int | None, NewNotification]], at: float
) -> None:
    """Insert a unit's outbox rows, folding coalescing ones into a waiting row of their kind.

    The result is that of enqueueing them one at a time, in a few statements: of the rows
    stored before the unit, each queue's waiting row is read (to fold into) and the ones
    still waiting to coalesce are released by a notification that does not coalesce;
    everything else happens in memory to the rows this unit adds. The caller holds the
    queues' advisory locks.
    """
    firsts: dict[tuple[str, int], NewNotification] = {}
    for incident_id, note in notes:
        firsts.setdefault((note.channel, incident_id or 0), note)
    asked = [queue for queue, note in firsts.items() if note.coalesce_seconds > 0]
    newest: dict[tuple[str, int], _Row] = {}
    if asked:
        channels, incidents = zip(*asked, strict=True)
        for r in await conn.fetch(_WAITING, list(channels), list(incidents)):
            newest[(r[1], r[2])] = _Row(r[3], r[1], r[4], loads(r[5]), 0.0, id=r[0])
    added: list[_Row] = []
    folded: dict[int, _Row] = {}  # stored rows folded into
    held: dict[tuple[str, int], list[_Row]] = {}  # added rows due later than now
    released: set[tuple[str, int]] = set()
    for incident_id, note in notes:
        queue = (note.channel, incident_id or 0)
        waiting = newest.get(queue)
        if note.coalesce_seconds > 0:
            if waiting is not None and waiting.kind == note.kind:
                waiting.payload = merge_payloads(waiting.payload, note.payload)
                if waiting.id is not None:
                    folded[waiting.id] = waiting
                continue
            due = at + note.coalesce_seconds
        else:
            # Whatever waits to be coalesced goes now, ahead of this row, in order.
            released.add(queue)
            for row in held.pop(queue, []):
                row.due = at
            due = at
        row = _Row(incident_id, note.channel, note.kind, note.payload, due)
        added.append(row)
        newest[queue] = row
        if due > at:
            held.setdefault(queue, []).append(row)
    if released:
        channels, incidents = zip(*sorted(released), strict=True)
        await conn.execute(_RELEASE, at, list(channels), list(incidents))
    if folded:
        await conn.executemany(
            "UPDATE outbox SET payload = $1 WHERE id = $2",
            [(dumps(r.payload), row_id) for row_id, r in folded.items()],
        )
    if added:
        await conn.executemany(
            _INSERT_OUTBOX,
            [(r.incident_id, r.channel, r.kind, dumps(r.payload), at, r.due) for r in added],
        )
