"""SQLite store over aiosqlite: WAL, synchronous=FULL, one writer connection, one reader."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from receiver.domain.model import AlertRecord, AlertStatus, Event, Incident, Status
from receiver.store.base import (
    Delivery,
    NewNotification,
    OutboxItem,
    StoreUnavailable,
    Transaction,
)
from receiver.store.schema import SQLITE_MIGRATIONS

CHUNK = 500  # keeps IN (...) lists under SQLite's variable limit


def ts(value: datetime | None) -> float | None:
    """A datetime as epoch seconds."""
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


_INCIDENT_COLUMNS = (
    "id, key, rule, severity, category, team, status, summary, group_labels, opened_at, "
    "triggered_at, first_starts_at, acknowledged_at, acknowledged_by, resolved_at, "
    "resolved_by, jira_key"
)


def _incident(row: Sequence[Any]) -> Incident:
    return Incident(
        id=row[0],
        key=row[1],
        rule=row[2],
        severity=row[3],
        category=row[4],
        team=row[5],
        status=Status(row[6]),
        summary=row[7],
        group_labels=json.loads(row[8]),
        opened_at=_dt(row[9]),
        triggered_at=_dt(row[10]),
        first_starts_at=_dt(row[11]),
        acknowledged_at=dt(row[12]),
        acknowledged_by=row[13],
        resolved_at=dt(row[14]),
        resolved_by=row[15],
        jira_key=row[16],
    )


_ALERT_COLUMNS = (
    "incident_id, fingerprint, status, severity, labels, annotations, starts_at, ends_at, "
    "generator_url, first_seen, last_seen"
)


def _alert(row: Sequence[Any]) -> AlertRecord:
    return AlertRecord(
        fingerprint=row[1],
        status=AlertStatus(row[2]),
        severity=row[3],
        labels=json.loads(row[4]),
        annotations=json.loads(row[5]),
        starts_at=_dt(row[6]),
        ends_at=dt(row[7]),
        generator_url=row[8],
        first_seen=_dt(row[9]),
        last_seen=_dt(row[10]),
    )


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


class _SqliteTx:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def _one(self, sql: str, args: Sequence[Any]) -> Any:
        async with self.db.execute(sql, args) as cur:
            return await cur.fetchone()

    async def latest_incident(self, key: str) -> Incident | None:
        row = await self._one(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE key = ? ORDER BY id DESC LIMIT 1",
            (key,),
        )
        return _incident(row) if row else None

    async def incident(self, incident_id: int) -> Incident | None:
        row = await self._one(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
        )
        return _incident(row) if row else None

    async def alerts_by_fingerprint(
        self, incident_id: int, fingerprints: Sequence[str]
    ) -> dict[str, AlertRecord]:
        found: dict[str, AlertRecord] = {}
        for part in _chunks(list(fingerprints)):
            marks = ",".join("?" * len(part))
            sql = (
                f"SELECT {_ALERT_COLUMNS} FROM alerts "
                f"WHERE incident_id = ? AND fingerprint IN ({marks})"
            )
            async with self.db.execute(sql, (incident_id, *part)) as cur:
                for row in await cur.fetchall():
                    found[row[1]] = _alert(row)
        return found

    async def firing_count(self, incident_id: int) -> int:
        row = await self._one(
            "SELECT count(*) FROM alerts WHERE incident_id = ? AND status = 'firing'",
            (incident_id,),
        )
        return int(row[0])

    async def save_incident(self, incident: Incident) -> int:
        values = (
            incident.key,
            incident.rule,
            incident.severity,
            incident.category,
            incident.team,
            incident.status.value,
            incident.summary,
            json.dumps(incident.group_labels),
            ts(incident.opened_at),
            ts(incident.triggered_at),
            ts(incident.first_starts_at),
            ts(incident.acknowledged_at),
            incident.acknowledged_by,
            ts(incident.resolved_at),
            incident.resolved_by,
            incident.jira_key,
        )
        if incident.id is None:
            cur = await self.db.execute(
                f"INSERT INTO incidents ({_INCIDENT_COLUMNS}) "
                "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            assert cur.lastrowid is not None
            return cur.lastrowid
        await self.db.execute(
            "UPDATE incidents SET key=?, rule=?, severity=?, category=?, team=?, status=?, "
            "summary=?, group_labels=?, opened_at=?, triggered_at=?, first_starts_at=?, "
            "acknowledged_at=?, acknowledged_by=?, resolved_at=?, resolved_by=?, jira_key=? "
            "WHERE id=?",
            (*values, incident.id),
        )
        return incident.id

    async def save_alerts(self, incident_id: int, alerts: Sequence[AlertRecord]) -> None:
        await self.db.executemany(
            f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status=excluded.status, "
            "severity=excluded.severity, labels=excluded.labels, "
            "annotations=excluded.annotations, starts_at=excluded.starts_at, "
            "ends_at=excluded.ends_at, generator_url=excluded.generator_url, "
            "last_seen=excluded.last_seen",
            [
                (
                    incident_id,
                    a.fingerprint,
                    a.status.value,
                    a.severity,
                    json.dumps(a.labels),
                    json.dumps(a.annotations),
                    ts(a.starts_at),
                    ts(a.ends_at),
                    a.generator_url,
                    ts(a.first_seen),
                    ts(a.last_seen),
                )
                for a in alerts
            ],
        )

    async def add_events(self, incident_id: int, events: Sequence[Event]) -> None:
        await self.db.executemany(
            "INSERT INTO timeline (incident_id, at, event, data) VALUES (?, ?, ?, ?)",
            [(incident_id, ts(e.at), e.event, json.dumps(e.data)) for e in events],
        )

    async def enqueue(
        self, incident_id: int | None, items: Sequence[NewNotification], now: datetime
    ) -> None:
        at = ts(now)
        await self.db.executemany(
            "INSERT INTO outbox (incident_id, channel, kind, payload, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(incident_id, n.channel, n.kind, json.dumps(n.payload), at, at) for n in items],
        )


class SqliteStore:
    """The embedded default store."""

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        await db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")
        return db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await self._connect()
            await self._migrate(self._writer)
            self._reader = await self._connect()
        except sqlite3.Error as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        async with db.execute("SELECT max(version) FROM schema_version") as cur:
            row = await cur.fetchone()
        current = (row[0] if row else None) or 0
        for version, script in enumerate(SQLITE_MIGRATIONS, start=1):
            if version <= current:
                continue
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version VALUES (?)", (version,))
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._reader = self._writer = None

    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreUnavailable("store is not open")
        return self._reader

    async def ping(self) -> None:
        try:
            async with self._r().execute("SELECT 1") as cur:
                await cur.fetchone()
        except (sqlite3.Error, ValueError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._begin() as db:
            yield _SqliteTx(db)

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        db = self._writer
        async with self._lock:
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot begin a transaction: {exc}") from exc
            try:
                yield db
            except BaseException:
                await asyncio.shield(db.execute("ROLLBACK"))
                raise
            try:
                await asyncio.shield(db.execute("COMMIT"))
            except sqlite3.Error as exc:
                await db.execute("ROLLBACK")
                raise StoreUnavailable(f"commit failed: {exc}") from exc

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            async with self._r().execute(sql, args) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
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
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        return [_incident(r) for r in rows]

    async def get_incident(self, incident_id: int) -> Incident | None:
        rows = await self._all(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
        )
        return _incident(rows[0]) if rows else None

    async def incident_alerts(
        self, incident_ids: Sequence[int], limit_per_incident: int | None = None
    ) -> dict[int, list[AlertRecord]]:
        out: dict[int, list[AlertRecord]] = {i: [] for i in incident_ids}
        for part in _chunks(list(incident_ids)):
            marks = ",".join("?" * len(part))
            sql = (
                f"SELECT {_ALERT_COLUMNS} FROM (SELECT *, row_number() OVER "
                "(PARTITION BY incident_id ORDER BY first_seen, fingerprint) AS n FROM alerts "
                f"WHERE incident_id IN ({marks})) WHERE ? IS NULL OR n <= ? ORDER BY incident_id, n"
            )
            for row in await self._all(sql, (*part, limit_per_incident, limit_per_incident)):
                out[row[0]].append(_alert(row))
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
        return [Event(event=r[1], at=_dt(r[0]), data=json.loads(r[2])) for r in rows]

    async def open_counts(self) -> dict[tuple[str, str], int]:
        rows = await self._all(
            "SELECT severity, status, count(*) FROM incidents WHERE status != 'resolved' "
            "GROUP BY severity, status"
        )
        return {(r[0], r[1]): r[2] for r in rows}

    _CLAIMABLE = (
        "SELECT id, incident_id, channel, kind, payload, attempts, created_at FROM outbox o "
        "WHERE status = 'pending' AND next_attempt_at <= ? "
        "AND (claimed_until IS NULL OR claimed_until < ?) "
        "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' "
        "AND p.channel = o.channel AND p.incident_id IS o.incident_id AND p.id < o.id) "
        "ORDER BY id LIMIT ?"
    )

    async def claim_outbox(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[OutboxItem]:
        at = now.timestamp()
        # Look first on the reader, so an idle poll never takes the write lock.
        if not await self._all(self._CLAIMABLE, (at, at, 1)):
            return []
        async with self._begin() as db:
            async with db.execute(self._CLAIMABLE, (at, at, limit)) as cur:
                rows = list(await cur.fetchall())
            await db.executemany(
                "UPDATE outbox SET claimed_until = ? WHERE id = ?",
                [(at + lease_seconds, r[0]) for r in rows],
            )
        return [OutboxItem(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], _dt(r[6])) for r in rows]

    async def _write(self, sql: str, args: Sequence[Any]) -> None:
        async with self._begin() as db:
            await db.execute(sql, args)

    async def outbox_done(self, item_id: int, now: datetime) -> None:
        await self._write(
            "UPDATE outbox SET status = 'sent', done_at = ?, attempts = attempts + 1, "
            "claimed_until = NULL WHERE id = ?",
            (ts(now), item_id),
        )

    async def outbox_retry(self, item_id: int, next_at: datetime, error: str) -> None:
        await self._write(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
            "claimed_until = NULL WHERE id = ?",
            (ts(next_at), error[:2000], item_id),
        )

    async def outbox_dead(self, item_id: int, now: datetime, error: str) -> None:
        await self._write(
            "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_at = ?, "
            "last_error = ?, claimed_until = NULL WHERE id = ?",
            (ts(now), error[:2000], item_id),
        )

    async def outbox_stats(self, now: datetime) -> tuple[int, float]:
        rows = await self._all(
            "SELECT count(*), min(created_at) FROM outbox WHERE status = 'pending'"
        )
        count, oldest = rows[0]
        age = max(0.0, now.timestamp() - oldest) if oldest is not None else 0.0
        return int(count), age

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
            "SELECT id, incident_id, channel, kind, status, attempts, created_at, "
            f"next_attempt_at, last_error FROM outbox WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        return [
            Delivery(r[0], r[1], r[2], r[3], r[4], r[5], _dt(r[6]), _dt(r[7]), r[8]) for r in rows
        ]
