"""SQLite only: migrations, pragmas and locking, checked on the database file itself.

Everything else about the store is backend-neutral and lives in the other modules.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from receiver.domain.delivery import Outcome
from receiver.domain.notifications import merge_payloads
from receiver.store import SqliteStore, StoreUnavailable, UnitOfWork
from receiver.store.base import Committed, DeliveryOutcome
from receiver.store.schema import SQLITE_MIGRATIONS
from tests.store.builders import (
    T0,
    alert_record,
    as_committed,
    at,
    inserting,
    joined,
    new_incident,
    note,
    reserved,
    seed,
    stored_event,
    stored_id,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


@pytest.fixture
async def sqlite_store(path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(path), busy_timeout_ms=50)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextmanager
def exclusive_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock until the block ends."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield other
        finally:
            other.execute("ROLLBACK")


def schema_versions(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT version FROM schema_version ORDER BY 1")]


async def test_migrations_apply_once_and_reopening_keeps_data(path: Path) -> None:
    first = SqliteStore(str(path))
    await first.open()
    [incident] = await seed(first, new_incident("db/primary"))
    await first.close()
    expected = list(range(1, len(SQLITE_MIGRATIONS) + 1))
    assert schema_versions(path) == expected

    for _ in range(2):
        again = SqliteStore(str(path))
        await again.open()
        try:
            assert await again.list_incidents(None, None, 10, None) == [incident]
        finally:
            await again.close()
    assert schema_versions(path) == expected


async def test_wal_and_synchronous_full(path: Path, sqlite_store: SqliteStore) -> None:
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # synchronous belongs to a connection, not to the file (and FULL is also the default of
    # many builds), so it is read on the store's own connections.
    writer = sqlite_store.backend._writer
    reader = sqlite_store.backend._reader
    assert writer is not None
    assert reader is not None
    assert writer.db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert list(await reader.execute_fetchall("PRAGMA synchronous")) == [(2,)]


async def test_locked_database_makes_commit_unavailable_and_writes_nothing(
    path: Path, sqlite_store: SqliteStore
) -> None:
    incident = await reserved(sqlite_store, "db/primary")
    incident_id = stored_id(incident)
    unit = inserting(
        incident,
        alerts=[(incident_id, alert_record("fp-a"))],
        events=[(incident_id, stored_event("opened", T0))],
        outbox=[(incident_id, note("incident.opened"))],
    )
    with exclusive_lock(path):
        with pytest.raises(StoreUnavailable):
            await sqlite_store.commit(unit, T0)
        assert await sqlite_store.get_incident(incident_id) is None
        # Readers are not blocked by a writer in WAL mode.
        await sqlite_store.ping()
        assert await sqlite_store.ingest_state({"db/primary": ["fp-a"]}) == ({}, {})

    assert await sqlite_store.list_incidents(None, None, 10, None) == []
    assert await sqlite_store.deliveries(None, None, 10) == []
    assert await sqlite_store.outbox_stats(T0) == (0, 0.0)
    with closing(sqlite3.connect(path)) as db:
        for table in ("incidents", "alerts", "timeline", "outbox"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table

    # Once the lock is gone the same unit commits.
    assert await sqlite_store.commit(unit, T0) == Committed({incident_id: 0})
    assert await sqlite_store.list_incidents(None, None, 10, None) == [incident]


async def test_locked_database_makes_claims_unavailable_and_keeps_outcomes(
    path: Path, sqlite_store: SqliteStore
) -> None:
    incident = await reserved(sqlite_store, "db/primary")
    await sqlite_store.commit(
        inserting(incident, outbox=[(stored_id(incident), note("incident.opened"))]), T0
    )
    [item] = await sqlite_store.claim_outbox(T0, 10, 30)
    with exclusive_lock(path):
        with pytest.raises(StoreUnavailable):
            await sqlite_store.claim_outbox(at(1), 10, 30, [DeliveryOutcome(item.id, Outcome.SENT)])
        with pytest.raises(StoreUnavailable):
            await sqlite_store.claim_outbox(at(31), 10, 30)  # due again, but cannot claim
    [row] = await sqlite_store.deliveries(None, None, 10)
    assert (row.status, row.attempts) == ("pending", 0)


async def test_open_waits_for_a_lock_held_briefly_by_another_connection(path: Path) -> None:
    with closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as other:
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(0.2, other.execute, ["ROLLBACK"])
        release.start()
        store = SqliteStore(str(path), busy_timeout_ms=3000)
        try:
            await store.open()  # the lock goes after 0.2 s, well within busy_timeout
            await store.ping()
            assert schema_versions(path) == list(range(1, len(SQLITE_MIGRATIONS) + 1))
        finally:
            release.join()
            await store.close()


async def test_folding_reads_a_waiting_row_changed_by_another_connection(
    path: Path, sqlite_store: SqliteStore
) -> None:
    """The writer remembers the payloads it folded, but folds into what the row holds."""
    [x] = await seed(sqlite_store, new_incident("x"))
    x_id = stored_id(x)
    for n in (1, 2):  # the second folds into the row the first made
        unit = UnitOfWork([x], outbox=[(x_id, joined("x", n, f"fp-{n}"))])
        x = as_committed(x, await sqlite_store.commit(unit, T0))
    other_payload = merge_payloads(
        joined("x", 0, "fp-other").payload, joined("x", 0, "fp-o").payload
    )
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("UPDATE outbox SET payload = ?", (json.dumps(other_payload),))
    await sqlite_store.commit(UnitOfWork([x], outbox=[(x_id, joined("x", 3, "fp-3"))]), T0)

    [item] = await sqlite_store.claim_outbox(at(60), 10, 30)
    assert item.payload == merge_payloads(other_payload, joined("x", 3, "fp-3").payload)
    fingerprints = [e["fingerprint"] for e in item.payload["events"]]
    assert fingerprints == ["fp-other", "fp-o", "fp-3"]
    assert item.payload["coalesced"] == 3
