"""SQLite writes a huge unit of work in steps, letting the loop run, and stays atomic:
a commit cancelled between two steps stores nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from receiver.store import SqliteStore, UnitOfWork
from tests.store.builders import alert_record, at, new_incident, note

INCIDENTS = 5000


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.open()
    yield store
    await store.close()


def big_unit() -> UnitOfWork:
    unit = UnitOfWork()
    for n in range(INCIDENTS):
        incident = new_incident(f"svc-{n:05d}")
        unit.touch(incident)
        unit.alerts.append((incident, alert_record(f"fp-{n:05d}")))
        unit.notify(incident, note("incident.opened"))
    return unit


async def test_cancelled_between_steps_stores_nothing_and_forgets_new_ids(
    sqlite: SqliteStore,
) -> None:
    unit = big_unit()
    writing = asyncio.create_task(sqlite.commit(unit, at(1)))
    for _ in range(3):  # into the statements, far from their end
        await asyncio.sleep(0)
    writing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writing
    assert await sqlite.list_incidents(None, None, 10, None) == []
    assert await sqlite.deliveries(None, None, 10) == []
    assert all(incident.id is None for incident in unit.incidents)
    await sqlite.commit(unit, at(2))  # a retry inserts them all
    assert len(await sqlite.list_incidents(None, None, INCIDENTS + 1, None)) == INCIDENTS
