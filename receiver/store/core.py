"""The store, written once over any SQL backend: the commit protocol, writing a unit of
work, outbox queues, claims and their outcomes, timers, schedules and the reads. A backend
(``sql.Backend``) supplies only its statements, transactions and executor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from receiver.domain.delivery import TELEGRAM_PREFIX, Prior
from receiver.domain.escalation import Timer
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.jsonfast import dumps, loads
from receiver.store.base import (
    OPEN,
    Committed,
    Conflict,
    Delivery,
    DeliveryOutcome,
    OutboxItem,
    PartWriter,
    UnitOfWork,
)
from receiver.store.core_maintenance import MaintenancePart
from receiver.store.core_reports import ReportsPart
from receiver.store.queues import Folds, QueuedRow, plan, queue_of, queues_to_read
from receiver.store.rows import (
    DELIVERY_COLUMNS,
    INCIDENT_COLUMNS,
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
from receiver.store.sql import Backend, Executor, Row, Table
from receiver.store.unit import NewNotification

T = TypeVar("T")
ERROR_CHARS = 2000  # of a delivery's last error, stored


class _Parts:
    """A transaction written a unit at a time (``write_in_parts``)."""

    def __init__(self, store: SqlStore, ex: Executor, at: float) -> None:
        self.store, self.ex, self.at = store, ex, at

    async def write(self, unit: UnitOfWork) -> None:
        await self.store._write(self.ex, unit, self.at)


class SqlStore(ReportsPart, MaintenancePart):
    """Durable state in a SQL database; see ``receiver.store.base.Store``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.sql = backend.sql
        self._folds = Folds()

    def _chunks(self, items: Sequence[T]) -> list[Sequence[T]]:
        size = self.backend.rows_per_call
        return [items[i : i + size] for i in range(0, len(items), size)]

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        await self.backend.open()

    async def close(self) -> None:
        await self.backend.close()

    async def ping(self) -> None:
        await self.backend.query("SELECT 1")

    async def installation_id(self) -> str:
        [(found,)] = await self.backend.query(self.sql.installation)
        return str(found)

    async def reserve_incident_ids(self, count: int) -> list[int]:
        return await self.backend.reserve_incident_ids(count) if count > 0 else []

    # --- writing a unit of work --------------------------------------------------------

    async def commit(self, unit: UnitOfWork, now: datetime) -> Committed:
        at = now.timestamp()

        async def body(ex: Executor) -> None:
            await self._write(ex, unit, at)

        await self.backend.run(body, conflicts=True)
        return unit.committed()

    @asynccontextmanager
    async def write_in_parts(self, now: datetime) -> AsyncIterator[PartWriter]:
        async with self.backend.transaction(conflicts=True) as ex:
            yield _Parts(self, ex, now.timestamp())

    async def _write(self, ex: Executor, unit: UnitOfWork, at: float) -> None:
        """The statements of a unit of work, inside its transaction."""
        sql = self.sql
        if unit.advance_schedule is not None:
            name, expected, following = unit.advance_schedule
            moved = await ex.execute(
                sql.advance_schedule, following.timestamp(), name, expected.timestamp()
            )
            if moved != 1:
                raise Conflict(f"schedule {name} was run meanwhile")
        if unit.end_window is not None and not await self._end_window(ex, unit):
            raise Conflict(f"maintenance window {unit.end_window[0]} ended meanwhile")
        await self._write_incidents(ex, unit)
        for alerts in self._chunks(unit.alerts):
            await ex.executemany(sql.upsert_alert, [alert_values(i, a) for i, a in alerts])
        for events in self._chunks(unit.events):
            await ex.executemany(
                sql.insert_event, [(i, ts(e.at), e.event, dumps(e.data)) for i, e in events]
            )
        if unit.reports:
            await self._write_reports(ex, unit)
        if unit.attachments:
            await self._write_attachments(ex, unit)
        if unit.mail:
            await self._write_mail(ex, unit, at)
        if unit.links:
            await ex.executemany(
                self.sql.upsert_link, [(i, target, at, by) for i, target, by in unit.links]
            )
        if unit.outbox:
            await self._enqueue(ex, unit.outbox, at)
        for delivery in unit.retried:
            if await ex.execute(sql.retry_dead, at, delivery) != 1:
                raise Conflict(f"delivery {delivery} is no longer dead")
        # The timers a unit fires first (each must still be pending), then those it stops:
        # a fired timer whose firing re-plans its incident is not "cancelled" by itself.
        for some in self._chunks(unit.fired_timers):
            fired = {r[0] for r in await ex.fetch(sql.fire_timers, at, list(some))}
            if len(fired) != len(set(some)):
                missing = sorted(set(some) - fired)
                raise Conflict(f"timers {missing} were handled meanwhile")
        for stopped in self._chunks(list(unit.cancel_timers)):
            await ex.execute(sql.cancel_timers, at, list(stopped))
        for timers in self._chunks(unit.timers):
            await ex.executemany(
                sql.insert_timer,
                [(o, t.kind.value, t.step, ts(t.trigger), ts(t.due_at)) for o, t in timers],
            )

    async def _write_incidents(self, ex: Executor, unit: UnitOfWork) -> None:
        """Insert the new incidents and update the others, version-checked.

        Runs of inserts and of updates go in unit order: an incident resolved before its
        key opens again must be stored resolved first (one open incident per key). A
        reserved id taken meanwhile violates the primary key: Conflict."""
        sql = self.sql
        updated = sorted(i for i in unit.incidents if i not in unit.new)
        if sql.lock_incidents is not None and len(updated) > 1:
            # row locks in one order, so two units never deadlock on them
            for some in self._chunks(updated):
                await ex.execute(sql.lock_incidents, list(some))
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        for incident_id, incident in unit.incidents.items():
            values = incident_values(incident)
            if incident_id in unit.new:
                await self._update(ex, updates)
                inserts.append((incident_id, *values, incident.source))
                if len(inserts) >= self.backend.rows_per_call:
                    await self._insert(ex, inserts)
            else:
                await self._insert(ex, inserts)
                updates.append((*values, incident_id, incident.version))
                if len(updates) >= self.backend.rows_per_call:
                    await self._update(ex, updates)
        await self._update(ex, updates)
        await self._insert(ex, inserts)

    async def _insert(self, ex: Executor, inserts: list[tuple[Any, ...]]) -> None:
        if inserts:
            await ex.executemany(self.sql.insert_incident, inserts)
            inserts.clear()

    async def _update(self, ex: Executor, updates: list[tuple[Any, ...]]) -> None:
        """Store incidents' new fields at once; Conflict if any changed since it was read."""
        if updates:
            changed = await ex.apply(self.sql.update_incidents, updates)
            if changed != len(updates):
                some = [u[-2] for u in updates[:10]]
                lost = len(updates) - changed
                raise Conflict(f"{lost} of {len(updates)} incidents (of {some}) changed meanwhile")
            updates.clear()

    async def _enqueue(
        self, ex: Executor, notes: Sequence[tuple[int | None, NewNotification]], at: float
    ) -> None:
        """Insert a unit's outbox rows, folding coalescing ones into a waiting row of their
        kind (``queues.plan``), in a few statements whatever the number of notifications."""
        sql = self.sql
        await self.backend.lock_queues(ex, {queue_of(i, n) for i, n in notes})
        waiting: dict[tuple[str, int], QueuedRow] = {}
        for part in self._chunks(queues_to_read(notes)):
            for r in await ex.fetch(sql.waiting, Table(part)):
                payload = self._folds.parsed(r[0], r[5])
                waiting[(r[1], r[2])] = QueuedRow(r[3], r[1], r[4], payload, 0.0, id=r[0])
        planned = plan(notes, waiting, at)
        for queues in self._chunks(planned.release):
            await ex.execute(sql.release, at, Table(queues))
        if planned.folded:
            texts = {row_id: dumps(row.payload) for row_id, row in planned.folded.items()}
            await ex.executemany(sql.set_payload, [(text, i) for i, text in texts.items()])
            for row_id, text in texts.items():
                self._folds.stored(row_id, text, planned.folded[row_id].payload)
        for added in self._chunks(planned.added):
            await ex.executemany(
                sql.insert_outbox,
                [(r.incident_id, r.channel, r.kind, dumps(r.payload), at, r.due) for r in added],
            )

    # --- claims ------------------------------------------------------------------------

    async def claim_outbox(
        self,
        now: datetime,
        limit: int,
        lease_seconds: float,
        finished: Sequence[DeliveryOutcome] = (),
        channel: str | None = None,
    ) -> list[OutboxItem]:
        sql, at = self.sql, now.timestamp()
        if not finished:
            async with self.backend.reading() as ex:
                if not await ex.fetch(sql.claimable, at, channel):
                    return []  # an idle poll takes no write lock and forces no fsync

        async def claim(ex: Executor) -> list[Row]:
            await self._finish(ex, finished, at)
            if not limit:
                return []
            return await ex.fetch(sql.claim_outbox, at, limit, at + lease_seconds, channel)

        rows = sorted(await self.backend.run(claim), key=lambda r: int(r[0]))
        return [
            OutboxItem(r[0], r[1], r[2], r[3], loads(r[4]), r[5], utc(r[6]), r[7]) for r in rows
        ]

    async def _finish(self, ex: Executor, finished: Sequence[DeliveryOutcome], at: float) -> None:
        """Record what became of claimed deliveries, and the effects they had."""
        sql = self.sql
        for o in finished:
            error = (o.error or "")[:ERROR_CHARS]
            if o.outcome == "sent":
                await ex.execute(sql.finish_sent, at, o.id)
            elif o.outcome == "retry":
                await ex.execute(sql.finish_retry, ts(o.next_at), error, o.id)
            elif o.outcome == "release":
                await ex.execute(sql.finish_release, o.id)
            else:
                await ex.execute(sql.finish_dead, at, error, o.id)
            for effect in o.effects:
                if effect.kind == "jira_key":
                    await ex.execute(sql.set_jira_key, effect.values[0], effect.incident_id)
                elif effect.kind == "slack_message":
                    await ex.execute(sql.add_slack_message, effect.incident_id, *effect.values)
                elif effect.kind == "telegram_message":  # kept beside Slack's, marked tg:
                    chat, message_id, purpose = effect.values
                    await ex.execute(
                        sql.add_slack_message, effect.incident_id,
                        f"{TELEGRAM_PREFIX}{chat}", message_id, purpose,
                    )  # fmt: skip

    async def claim_timers(self, now: datetime, limit: int, lease_seconds: float) -> list[Timer]:
        sql, at = self.sql, now.timestamp()
        async with self.backend.reading() as ex:
            if not await ex.fetch(sql.timers_due, at):
                return []

        async def claim(ex: Executor) -> list[Row]:
            return await ex.fetch(sql.claim_timers, at, limit, at + lease_seconds)

        timers = [timer_from_row(r) for r in await self.backend.run(claim)]
        return sorted(timers, key=lambda t: (t.due_at, t.id or 0))

    async def schedule_next(self, name: str, initial: datetime) -> datetime:
        sql = self.sql
        rows = await self.backend.query(sql.schedule, name)
        if not rows:

            async def insert(ex: Executor) -> list[Row]:
                await ex.execute(sql.add_schedule, name, initial.timestamp())
                return await ex.fetch(sql.schedule, name)  # sees either replica's insert

            rows = await self.backend.run(insert)
        return utc(rows[0][0])

    async def heartbeats_seen(self, seen: Mapping[str, datetime]) -> None:
        if not seen:
            return
        sql = self.sql

        async def write(ex: Executor) -> None:
            for name, at in sorted(seen.items()):  # one order: replicas never deadlock
                await ex.execute(sql.heartbeat_seen, name, at.timestamp())

        await self.backend.run(write)

    async def heartbeat_missed(self, name: str, at: datetime | None) -> None:
        stamp = at.timestamp() if at is not None else None
        await self.backend.run(lambda ex: ex.execute(self.sql.heartbeat_missed, stamp, name))

    async def heartbeats(self) -> dict[str, tuple[datetime, datetime | None]]:
        rows = await self.backend.query(self.sql.heartbeats)
        return {str(r[0]): (utc(r[1]), utc(r[2]) if r[2] is not None else None) for r in rows}

    async def set_password(self, person: str, hashed: str, at: datetime) -> None:
        sql = self.sql.set_password
        await self.backend.run(lambda ex: ex.execute(sql, person, hashed, at.timestamp()))

    async def password(self, person: str) -> tuple[str, datetime] | None:
        rows = await self.backend.query(self.sql.password, person)
        return (str(rows[0][0]), utc(rows[0][1])) if rows else None

    # --- reads -------------------------------------------------------------------------

    async def ingest_state(
        self, wanted: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Incident], dict[int, dict[str, AlertRecord]]]:
        latest: dict[str, Incident] = {}
        known: dict[int, dict[str, AlertRecord]] = {}
        async with self.backend.reading() as ex:
            for keys in self._chunks(list(wanted)):
                for row in await ex.fetch(self.sql.latest, list(keys)):
                    latest[row[1]] = incident_from_row(row)
            known.update({i.id: {} for i in latest.values() if i.id is not None})
            pairs = [
                (incident.id, fp)
                for key, incident in latest.items()
                for fp in dict.fromkeys(wanted[key])
            ]
            for part in self._chunks(pairs):
                for row in await ex.fetch(self.sql.known_alerts, Table(part)):
                    known[row[0]][row[1]] = alert_from_row(row)
        return latest, known

    async def prior_effects(self, incident_ids: Sequence[int]) -> dict[int, Prior]:
        if not incident_ids:
            return {}
        jira = {r[0]: r[1] for r in await self._by_ids(self.sql.jira_keys, incident_ids)}
        messages: dict[int, list[tuple[str, str, str]]] = {}
        for row in await self._by_ids(self.sql.slack_messages, incident_ids):
            messages.setdefault(row[0], []).append((row[1], row[2], row[3]))
        return {i: Prior(jira.get(i), tuple(messages.get(i, ()))) for i in incident_ids}

    def _filtered(
        self, table_columns: str, conditions: Sequence[tuple[str, object]], limit: int
    ) -> tuple[str, list[object]]:
        """A newest-first listing with the conditions whose value is given."""
        where: list[str] = []
        args: list[object] = []
        for condition, value in conditions:
            if value is not None:
                args.append(value)
                where.append(f"{condition} {self.backend.param(len(args))}")
        args.append(limit)
        sql = (
            f"SELECT {table_columns} WHERE {' AND '.join(where) or '1 = 1'} "
            f"ORDER BY id DESC LIMIT {self.backend.param(len(args))}"
        )
        return sql, args

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
        by_status = ("status !=", "resolved") if status == OPEN else ("status =", status)
        conditions = (
            by_status,
            ("severity =", severity),
            ("team =", team),
            ("category =", category),
            ("source =", source),
            ("id <", before),
        )
        sql, args = self._filtered(f"{INCIDENT_COLUMNS} FROM incidents", conditions, limit)
        return [incident_from_row(r) for r in await self.backend.query(sql, *args)]

    async def deliveries(
        self, status: str | None, incident_id: int | None, limit: int
    ) -> list[Delivery]:
        conditions = (("status =", status), ("incident_id =", incident_id))
        sql, args = self._filtered(f"{DELIVERY_COLUMNS} FROM outbox", conditions, limit)
        return [delivery_from_row(r) for r in await self.backend.query(sql, *args)]

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        sql, args = self._filtered(f"{DELIVERY_COLUMNS} FROM outbox", (("id =", delivery_id),), 1)
        rows = await self.backend.query(sql, *args)
        return delivery_from_row(rows[0]) if rows else None

    async def get_incident(self, incident_id: int) -> Incident | None:
        rows = await self.backend.query(self.sql.get_incident, incident_id)
        return incident_from_row(rows[0]) if rows else None

    async def incident_alerts(
        self, incident_ids: Sequence[int], limit_per_incident: int | None = None
    ) -> dict[int, list[AlertRecord]]:
        out: dict[int, list[AlertRecord]] = {i: [] for i in incident_ids}
        for row in await self._by_ids(self.sql.incident_alerts, incident_ids, limit_per_incident):
            out[row[0]].append(alert_from_row(row))
        return out

    async def alert_counts(self, incident_ids: Sequence[int]) -> dict[int, int]:
        out = dict.fromkeys(incident_ids, 0)
        for incident_id, count in await self._by_ids(self.sql.alert_counts, incident_ids):
            out[incident_id] = count
        return out

    async def timeline(self, incident_id: int) -> list[Event]:
        rows = await self.backend.query(self.sql.timeline, incident_id)
        return [event_from_row(r) for r in rows]

    async def open_counts(self) -> dict[tuple[str, str], int]:
        return open_counts_of(await self.backend.query(self.sql.open_counts))

    async def outbox_stats(self, now: datetime) -> tuple[int, float]:
        return outbox_stats_of((await self.backend.query(self.sql.outbox_stats))[0], now)

    async def digest_incidents(self, since: datetime) -> list[Incident]:
        rows = await self.backend.query(self.sql.digest_incidents, since.timestamp())
        return [incident_from_row(r) for r in rows]
