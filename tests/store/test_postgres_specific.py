"""PostgreSQL only: replicas sharing one database, migrations, connection failures, and
outbox decisions checked against SQLite's.

Two ``PostgresStore`` instances on one schema have separate pools, as two receiver
processes would: whatever they both try, the database must let exactly one do it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver.domain.delivery import Outcome
from receiver.domain.escalation import Timer, TimerKind
from receiver.domain.notifications import MAX_EVENTS_PER_PAYLOAD
from receiver.store import (
    Conflict,
    PostgresStore,
    SqliteStore,
    Store,
    StoreUnavailable,
    UnitOfWork,
    store_from_url,
)
from receiver.store.base import Committed, DeliveryOutcome, NewNotification, OutboxItem
from receiver.store.schema import POSTGRES_MIGRATIONS
from tests.postgres import POSTGRES_URL, postgres_schema
from tests.store.builders import (
    JOINED,
    T0,
    at,
    inserting,
    joined,
    new_incident,
    note,
    reserved,
    seed,
    stored_id,
    with_ids,
)

Replicas = tuple[PostgresStore, PostgresStore]


@pytest.fixture
async def replicas(schema: str) -> AsyncIterator[Replicas]:
    a, b = PostgresStore(POSTGRES_URL, schema=schema), PostgresStore(POSTGRES_URL, schema=schema)
    await asyncio.gather(a.open(), b.open())
    try:
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())


async def drain_outbox(store: PostgresStore, claimed: list[int]) -> None:
    """Claim and send until nothing is claimable, recording every id claimed."""
    finished: Sequence[DeliveryOutcome] = ()
    while True:
        batch = await store.claim_outbox(T0, 7, 300, finished)
        if not batch and not finished:
            return
        claimed.extend(item.id for item in batch)
        finished = [DeliveryOutcome(item.id, Outcome.SENT) for item in batch]


async def test_one_of_two_replicas_opening_the_same_key_wins(replicas: Replicas) -> None:
    a, b = replicas
    pairs = [(await reserved(a, f"key-{n}"), await reserved(b, f"key-{n}")) for n in range(20)]
    results = await asyncio.gather(
        *(
            store.commit(inserting(incident), T0)
            for pair in pairs
            for store, incident in zip((a, b), pair, strict=True)
        ),
        return_exceptions=True,
    )
    for n, (first, second) in enumerate(pairs):
        outcome = results[2 * n : 2 * n + 2]
        assert sorted(type(r).__name__ for r in outcome) == ["Committed", "Conflict"], outcome
        winner, loser = (first, second) if isinstance(outcome[0], Committed) else (second, first)
        assert await a.get_incident(stored_id(loser)) is None
        latest, _ = await b.ingest_state({winner.key: []})
        assert latest == {winner.key: winner}
    assert len(await a.list_incidents(None, None, 100, None)) == 20


async def test_two_replicas_reserve_distinct_increasing_ids(replicas: Replicas) -> None:
    """Unlike two processes on one SQLite file, replicas never share a reserved id."""
    a, b = replicas
    batches = await asyncio.gather(*(store.reserve_incident_ids(5) for store in (a, b) * 10))
    assert all(batch == sorted(batch) and len(batch) == 5 for batch in batches)
    everything = [i for batch in batches for i in batch]
    assert len(set(everything)) == len(everything) == 100
    [numbered] = await seed(a, new_incident("x"))
    assert stored_id(numbered) > max(everything)
    # Either replica commits an id the other reserved.
    await b.commit(inserting(new_incident("y", id=batches[0][0])), T0)
    assert await a.get_incident(batches[0][0]) is not None


async def test_a_replica_waits_for_an_open_in_flight_then_conflicts(
    replicas: Replicas, admin: Any
) -> None:
    a, _ = replicas
    other = admin.transaction()
    await other.start()
    await admin.execute(
        "INSERT INTO incidents (key, rule, severity, category, team, status, summary, "
        "group_labels, opened_at, triggered_at, first_starts_at) "
        "VALUES ('db/primary', 'r', 'critical', 'c', 't', 'triggered', 's', '{}', 0, 0, 0)"
    )
    incident = await reserved(a, "db/primary")
    commit = asyncio.create_task(a.commit(inserting(incident), T0))
    await asyncio.sleep(0.2)
    assert not commit.done()  # blocked on the other transaction's index entry
    await other.commit()
    with pytest.raises(Conflict):
        await commit
    assert await a.get_incident(stored_id(incident)) is None


async def test_two_replicas_never_claim_the_same_delivery(replicas: Replicas, admin: Any) -> None:
    a, b = replicas
    incidents = await with_ids(a, *(new_incident(f"key-{n}") for n in range(150)))
    outbox: list[tuple[int | None, NewNotification]] = [
        (stored_id(i), note(kind)) for i in incidents for kind in ("incident.opened", "ack")
    ]
    outbox += [(None, note("digest", channel="slack")) for _ in range(3)]
    await a.commit(inserting(*incidents, outbox=outbox), T0)

    claimed_a: list[int] = []
    claimed_b: list[int] = []
    await asyncio.gather(drain_outbox(a, claimed_a), drain_outbox(b, claimed_b))

    assert not set(claimed_a) & set(claimed_b)
    assert len(claimed_a) + len(claimed_b) == len(set(claimed_a + claimed_b)) == 303
    assert claimed_a and claimed_b  # both really took part
    rows = await admin.fetch("SELECT status, claims, attempts FROM outbox")
    assert {tuple(r) for r in rows} == {("sent", 1, 1)}


async def test_a_locked_older_row_still_holds_back_its_queue(
    replicas: Replicas, admin: Any
) -> None:
    a, b = replicas
    x, y = [stored_id(i) for i in await seed(a, new_incident("x"), new_incident("y"))]
    await a.commit(
        UnitOfWork(outbox=[(x, note("incident.opened")), (x, note("ack")), (y, note("opened"))]),
        T0,
    )
    [first, _, _] = await admin.fetch("SELECT id FROM outbox ORDER BY id")
    # Another replica is in the middle of claiming x's first row.
    other = admin.transaction()
    await other.start()
    await admin.execute("SELECT 1 FROM outbox WHERE id = $1 FOR UPDATE", first[0])
    try:
        [item] = await b.claim_outbox(T0, 10, 30)
        assert item.incident_id == y  # x's second row did not overtake its locked first
    finally:
        await other.rollback()
    [x_first] = await b.claim_outbox(T0, 10, 30)
    assert (x_first.id, x_first.kind) == (first[0], "incident.opened")


async def test_two_replicas_never_claim_the_same_timer(replicas: Replicas) -> None:
    a, b = replicas
    incidents = await with_ids(a, *(new_incident(f"key-{n}") for n in range(50)))
    timers = [
        (stored_id(incident), Timer(TimerKind.ESCALATION, step, at(step), T0))
        for incident in incidents
        for step in range(4)
    ]
    await a.commit(inserting(*incidents, timers=timers), T0)

    async def drain(store: PostgresStore) -> list[int]:
        claimed: list[int] = []
        while batch := await store.claim_timers(at(10), 9, 300):
            claimed += [t.id for t in batch if t.id is not None]
        return claimed

    got_a, got_b = await asyncio.gather(drain(a), drain(b))
    assert not set(got_a) & set(got_b)
    assert len(got_a) + len(got_b) == len(set(got_a + got_b)) == 200


async def test_two_replicas_firing_one_timer_one_conflicts(replicas: Replicas) -> None:
    a, b = replicas
    incident = await reserved(a, "x")
    await a.commit(
        inserting(incident, timers=[(stored_id(incident), Timer(TimerKind.ACK_SLA, 0, T0, T0))]),
        T0,
    )
    [timer] = await a.claim_timers(T0, 10, 30)
    assert timer.id is not None
    results = await asyncio.gather(
        a.commit(UnitOfWork(fired_timers=[timer.id]), at(1)),
        b.commit(UnitOfWork(fired_timers=[timer.id]), at(1)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Committed", "Conflict"]


async def test_an_expired_claim_passes_to_the_other_replica(replicas: Replicas) -> None:
    a, b = replicas
    incident = await reserved(a, "x")
    await a.commit(inserting(incident, outbox=[(stored_id(incident), note("opened"))]), T0)
    [held] = await a.claim_outbox(T0, 10, 30)
    assert not held.maybe_delivered
    assert await b.claim_outbox(at(29), 10, 30) == []

    [taken] = await b.claim_outbox(at(31), 10, 30)  # the first replica died holding it
    assert taken == OutboxItem(
        held.id, stored_id(incident), "jira", "opened", held.payload, 0, T0, 2
    )
    assert taken.maybe_delivered
    assert await a.claim_outbox(at(32), 10, 30) == []


async def test_replicas_coalescing_into_one_row_lose_nothing(replicas: Replicas) -> None:
    a, b = replicas
    [incident] = await seed(a, new_incident("x"))
    incident_id = stored_id(incident)
    notes = [joined("x", n, f"fp-{n}") for n in range(40)]
    await asyncio.gather(
        *(
            (a, b)[n % 2].commit(UnitOfWork(outbox=[(incident_id, joined_note)]), at(n / 100))
            for n, joined_note in enumerate(notes)
        )
    )
    [row] = await a.deliveries(None, incident_id, 10)
    assert row.kind == JOINED
    [item] = await b.claim_outbox(at(100), 10, 30)
    assert item.payload["coalesced"] == 40
    dropped = 40 - MAX_EVENTS_PER_PAYLOAD
    assert item.payload["events_dropped"] == dropped
    assert len(item.payload["events"]) == MAX_EVENTS_PER_PAYLOAD


async def test_concurrent_migrations_apply_each_version_once(schema: str, admin: Any) -> None:
    stores = [PostgresStore(POSTGRES_URL, schema=schema) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        for store in stores:
            await store.ping()
        await seed(stores[0], new_incident("x"))
        assert len(await stores[3].list_incidents(None, None, 10, None)) == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    versions = [r[0] for r in await admin.fetch("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, len(POSTGRES_MIGRATIONS) + 1))

    again = PostgresStore(POSTGRES_URL, schema=schema)  # reopening migrates nothing
    await again.open()
    try:
        assert len(await again.list_incidents(None, None, 10, None)) == 1
    finally:
        await again.close()
    assert len(await admin.fetch("SELECT version FROM schema_version")) == len(versions)
    public = await admin.fetchval(
        "SELECT count(*) FROM pg_tables WHERE tablename = 'incidents' AND schemaname = $1",
        schema,
    )
    assert public == 1


async def test_unreachable_server_is_unavailable_at_once() -> None:
    store = PostgresStore("postgresql://receiver:s3cret@127.0.0.1:1/test", connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    assert time.monotonic() - started < 5
    assert "127.0.0.1:1/test" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    with pytest.raises(StoreUnavailable):
        await store.ping()


@pytest.mark.parametrize(
    "url", ["postgresql://db.example:5433/receiver", "postgres://u:p@db.example/receiver"]
)
def test_postgresql_urls_pick_the_postgres_store(url: str) -> None:
    store = store_from_url(url)
    assert isinstance(store, PostgresStore)
    assert store.url == url


async def test_dropped_connections_are_unavailable_then_recover(schema: str, admin: Any) -> None:
    name = f"receiver-{schema}"
    store = PostgresStore(f"{POSTGRES_URL}?application_name={name}", schema=schema)
    await store.open()
    try:
        await dropped_then_recovered(store, admin, name)
    finally:
        await store.close()


async def dropped_then_recovered(store: PostgresStore, admin: Any, name: str) -> None:
    await asyncio.gather(*(store.ping() for _ in range(5)))  # several pooled connections
    killed = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        name,
    )
    assert killed >= 1
    failures = 0
    for _ in range(20):  # each broken pooled connection fails once, then is replaced
        try:
            await store.ping()
        except StoreUnavailable:
            failures += 1
            continue
        break
    assert failures < 20
    [incident] = await seed(store, new_incident("x"))
    assert await store.get_incident(stored_id(incident)) == incident


# --- the same outbox decisions as SQLite ----------------------------------------------------

KINDS = [(JOINED, 60.0), (JOINED, 60.0), ("incident.opened", 0.0), ("incident.resolved", 0.0)]


def random_unit(rng: random.Random, owners: list[int | None]) -> UnitOfWork:
    """One to four notifications, mostly coalescing ones, on a few queues; as they are (not
    folded in the unit), so that the stores fold them."""
    unit = UnitOfWork()
    for _ in range(rng.randint(1, 4)):
        kind, coalesce = rng.choice(KINDS)
        payload = {"kind": kind, "events": [{"n": rng.randrange(1000)}]}
        channel = rng.choice(["jira", "jira", "slack"])
        unit.outbox.append((rng.choice(owners), NewNotification(channel, kind, payload, coalesce)))
    return unit


def random_outcome(rng: random.Random, item: OutboxItem, now: datetime) -> DeliveryOutcome:
    choice = rng.choice([Outcome.SENT, Outcome.SENT, Outcome.RETRY, Outcome.DEAD, Outcome.RELEASE])
    next_at = now + timedelta(seconds=rng.uniform(1, 90)) if choice == "retry" else None
    return DeliveryOutcome(
        item.id, choice, f"error {item.id}" if choice != "sent" else None, next_at
    )


@pytest.mark.parametrize("draw", range(6))
async def test_outbox_decisions_match_sqlite(draw: int, schema: str, tmp_path: Path) -> None:
    backends: list[Store] = [
        SqliteStore(str(tmp_path / "s.db")),
        PostgresStore(POSTGRES_URL, schema=schema),
    ]
    for backend in backends:
        await backend.open()
    try:
        rng = random.Random(draw)
        script: list[tuple[str, Any]] = []
        now = T0
        for _ in range(120):  # the script is drawn once, then played on both backends
            now += timedelta(seconds=rng.choice([0, 0, 1, 5, 20, 45]))
            script.append(("commit" if rng.random() < 0.5 else "claim", (now, rng.random())))
        histories = []
        for backend in backends:
            play = random.Random(draw * 1000)
            stored = await seed(backend, new_incident("x"), new_incident("y"))
            owners: list[int | None] = [*map(stored_id, stored), None]
            held: list[OutboxItem] = []
            history: list[Any] = []
            for action, (when, _) in script:
                if action == "commit":
                    await backend.commit(random_unit(play, owners), when)
                    continue
                done = [i for i in held if play.random() < 0.6]
                held = [i for i in held if i not in done]
                outcomes = [random_outcome(play, i, when) for i in done]
                claimed = await backend.claim_outbox(when, play.randint(1, 4), 30, outcomes)
                held += claimed
                history.append(claimed)
            history.append(await backend.deliveries(None, None, 1000))
            histories.append(history)
        assert histories[0] == histories[1]
    finally:
        for backend in backends:
            await backend.close()


async def test_queue_locks_belong_to_the_schema_however_it_is_chosen(schema: str) -> None:
    """A schema named in the URL's search_path scopes the queue locks like ``schema=``."""

    def in_url(name: str) -> str:
        return f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}search_path={name}"

    async with postgres_schema() as other:
        stores = [
            store_from_url(in_url(schema)),
            PostgresStore(POSTGRES_URL, schema=schema),
            store_from_url(in_url(other)),
            PostgresStore(POSTGRES_URL),  # the default schema
        ]
        await asyncio.gather(*(s.open() for s in stores))
        try:
            keys = [s.backend.queue_key("jira", 7) for s in stores if isinstance(s, PostgresStore)]
        finally:
            await asyncio.gather(*(s.close() for s in stores))
    assert len(keys) == 4
    assert keys[0] == keys[1] != keys[2]
    # The default schema keeps the scope that earlier versions used for every schema, so
    # that replicas of both versions take the same locks while an upgrade rolls out.
    legacy_scope = int.from_bytes(
        hashlib.blake2b(b"\x00jira\x007", digest_size=8).digest(), "big", signed=True
    )
    assert keys[3] == legacy_scope not in keys[:3]


async def test_a_unit_with_thousands_of_queues_commits(schema: str) -> None:
    """One queue lock each would overflow the server's lock table (max_locks_per_transaction
    is 64 per connection by default): a unit of more queues locks them all at once."""
    store = PostgresStore(POSTGRES_URL, schema=schema)
    await store.open()
    try:
        incidents = await with_ids(store, *(new_incident(f"db/{n}") for n in range(7000)))
        unit = inserting(*incidents)
        for incident in incidents:
            unit.notify(stored_id(incident), note("incident.opened"))
            unit.notify(stored_id(incident), note("incident.opened", channel="slack"))
        await store.commit(unit, T0)
        small = await reserved(store, "db/small")  # an ordinary unit still takes its own locks
        await store.commit(inserting(small, outbox=[(stored_id(small), note("x"))]), T0)
        pending, _ = await store.outbox_stats(T0)
        assert pending == 2 * 7000 + 1
    finally:
        await store.close()
