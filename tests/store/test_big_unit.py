"""SQLite writes a huge unit of work in steps, letting the loop run, and stays atomic:
a commit cancelled between two steps stores nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from receiver.store import SqliteStore, UnitOfWork
from receiver.store.base import Committed
from tests.store.builders import alert_record, at, new_incident, note

INCIDENTS = 5000


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.open()
    yield store
    await store.close()


async def big_unit(store: SqliteStore) -> UnitOfWork:
    unit = UnitOfWork()
    for n, incident_id in enumerate(await store.reserve_incident_ids(INCIDENTS)):
        unit.open(new_incident(f"svc-{n:05d}", id=incident_id))
        unit.alerts.append((incident_id, alert_record(f"fp-{n:05d}")))
        unit.notify(incident_id, note("incident.opened"))
    return unit


async def test_cancelled_between_steps_stores_nothing_and_a_retry_stores_it_all(
    sqlite: SqliteStore,
) -> None:
    unit = await big_unit(sqlite)
    writing = asyncio.create_task(sqlite.commit(unit, at(1)))
    for _ in range(3):  # into the statements, far from their end
        await asyncio.sleep(0)
    writing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writing
    assert writing.cancelled()  # it did not get to the end
    assert await sqlite.list_incidents(None, None, 10, None) == []
    assert await sqlite.deliveries(None, None, 10) == []
    first, *_, last = unit.incidents
    assert await sqlite.alert_counts([first, last]) == {first: 0, last: 0}

    # A retry inserts them all, under the ids reserved for them.
    assert await sqlite.commit(unit, at(2)) == Committed(dict.fromkeys(unit.incidents, 0))
    assert len(await sqlite.list_incidents(None, None, INCIDENTS + 1, None)) == INCIDENTS
    for incident_id in (first, last):
        assert await sqlite.get_incident(incident_id) == unit.incidents[incident_id]
    assert await sqlite.alert_counts([first, last]) == {first: 1, last: 1}
    assert len(await sqlite.deliveries(None, None, INCIDENTS + 1)) == INCIDENTS
