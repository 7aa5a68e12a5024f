"""The Store interface: stored schedules of recurring jobs and the digest's incidents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.domain.model import Incident, Status
from receiver.store import Conflict, Store, StoreUnavailable, UnitOfWork
from receiver.store.base import NewNotification
from tests.postgres import postgres_schema
from tests.store.builders import T0, at, inserting, new_incident, reserved, seed, stored_id
from tests.store.conftest import BACKENDS, make_store

NAME = "digest.weekly"
DUE = datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def digest_row(text: str = "the week") -> tuple[int | None, NewNotification]:
    return None, NewNotification("digest", "digest.weekly", {"channel": "#d", "text": text})


async def digests(store: Store) -> list[str]:
    return [d.kind for d in await store.deliveries(None, None, 100) if d.channel == "digest"]


async def test_a_schedule_starts_at_its_initial_time_once(store: Store) -> None:
    assert await store.schedule_next(NAME, DUE) == DUE
    assert await store.schedule_next(NAME, DUE + WEEK) == DUE  # already stored
    assert await store.schedule_next("other", DUE + WEEK) == DUE + WEEK
    stored = await store.schedule_next(NAME, T0)
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)


async def test_advancing_commits_with_the_unit_s_rows(store: Store) -> None:
    due = await store.schedule_next(NAME, DUE)
    await store.commit(
        UnitOfWork(outbox=[digest_row()], advance_schedule=(NAME, due, due + WEEK)), DUE
    )
    assert await store.schedule_next(NAME, T0) == DUE + WEEK
    assert await digests(store) == ["digest.weekly"]
    [claimed] = await store.claim_outbox(DUE, 10, 30)
    assert (claimed.incident_id, claimed.channel, claimed.payload["text"]) == (
        None,
        "digest",
        "the week",
    )


async def test_a_stale_advance_conflicts_and_writes_nothing(store: Store) -> None:
    due = await store.schedule_next(NAME, DUE)
    await store.commit(
        UnitOfWork(outbox=[digest_row()], advance_schedule=(NAME, due, due + WEEK)), DUE
    )
    fresh = await reserved(store, "x")
    again = inserting(fresh, outbox=[digest_row("again")])
    again.advance_schedule = (NAME, due, due + WEEK)
    with pytest.raises(Conflict):
        await store.commit(again, DUE + timedelta(seconds=1))
    assert await store.get_incident(stored_id(fresh)) is None
    assert await store.list_incidents(None, None, 10, None) == []
    assert await digests(store) == ["digest.weekly"]
    assert await store.schedule_next(NAME, T0) == DUE + WEEK


async def test_advancing_an_unknown_schedule_conflicts(store: Store) -> None:
    with pytest.raises(Conflict):
        await store.commit(
            UnitOfWork(outbox=[digest_row()], advance_schedule=(NAME, DUE, DUE + WEEK)), DUE
        )
    assert await digests(store) == []


async def test_times_keep_microseconds(store: Store) -> None:
    odd = DUE + timedelta(microseconds=123457)
    due = await store.schedule_next(NAME, odd)
    assert due == odd
    later = odd + WEEK + timedelta(microseconds=1)
    await store.commit(UnitOfWork(advance_schedule=(NAME, due, later)), DUE)
    assert await store.schedule_next(NAME, T0) == later


async def test_digest_incidents_of_a_week(store: Store) -> None:
    """Those opened, acknowledged or resolved since the start, and every one still open."""
    since = at(3600)
    before, after = at(60), at(7200)

    def made(key: str, *, ack: datetime | None = None, resolved: datetime | None = None,
             opened: datetime = before) -> Incident:  # fmt: skip
        incident = replace(new_incident(key, opened=opened), acknowledged_at=ack)
        if resolved is not None:
            return replace(incident, resolved_at=resolved, status=Status.RESOLVED, firing_alerts=0)
        if ack is not None:
            return replace(incident, status=Status.ACKNOWLEDGED)
        return incident

    stored = await seed(
        store,
        made("done-before", ack=at(120), resolved=at(600)),
        made("open-unacked"),
        made("open-acked", ack=at(120)),
        made("resolved-in-week", resolved=after),
        made("resolved-at-start", resolved=since),
        made("acked-in-week", ack=after, resolved=at(9000)),
        made("opened-in-week", opened=after, resolved=at(9000)),
        now=after,
    )
    by_key = {i.key: i for i in stored}
    found = await store.digest_incidents(since)
    assert [i.key for i in found] == [
        "open-unacked",
        "open-acked",
        "resolved-in-week",
        "resolved-at-start",
        "acked-in-week",
        "opened-in-week",
    ]
    assert found == [by_key[i.key] for i in found]
    assert found[4] == by_key["acked-in-week"]
    assert await store.digest_incidents(at(10_000)) == [
        by_key["open-unacked"],
        by_key["open-acked"],
    ]


async def test_calls_on_a_closed_store_are_unavailable(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.schedule_next(NAME, DUE)
    with pytest.raises(StoreUnavailable):
        await store.digest_incidents(DUE)


@pytest.fixture(params=BACKENDS)
async def two(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, as two replicas (or two processes on one SQLite file)."""
    async with AsyncExitStack() as stack:
        schema = None
        if request.param == "postgres":
            schema = await stack.enter_async_context(postgres_schema())
        stores = (
            make_store(request.param, tmp_path, schema),
            make_store(request.param, tmp_path, schema),
        )
        for opened in stores:
            await opened.open()
            stack.push_async_callback(opened.close)
        yield stores


async def test_two_replicas_starting_together_store_one_schedule(two: tuple[Store, Store]) -> None:
    a, b = two
    first, second = await asyncio.gather(
        a.schedule_next(NAME, DUE), b.schedule_next(NAME, DUE + WEEK)
    )
    assert first == second
    assert await a.schedule_next(NAME, T0) == await b.schedule_next(NAME, T0) == first


async def test_two_replicas_advancing_together_one_conflicts(two: tuple[Store, Store]) -> None:
    a, b = two
    due = await a.schedule_next(NAME, DUE)
    assert await b.schedule_next(NAME, T0) == due
    units = [
        UnitOfWork(outbox=[digest_row(name)], advance_schedule=(NAME, due, due + WEEK))
        for name in ("a", "b")
    ]
    results = await asyncio.gather(
        a.commit(units[0], DUE), b.commit(units[1], DUE), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["Committed", "Conflict"]
    assert len(await digests(a)) == 1
    assert await b.schedule_next(NAME, T0) == due + WEEK
