"""The Store interface: incident ids reserved ahead of a decision, inserted through
``UnitOfWork.new``, and the prior effects of incidents."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from receiver.domain.delivery import Outcome, Prior
from receiver.domain.escalation import Timer, TimerKind
from receiver.domain.model import Incident
from receiver.store import Conflict, SqliteStore, Store, UnitOfWork
from receiver.store.base import Committed, DeliveryOutcome, Effect
from tests.store.builders import (
    T0,
    alert_record,
    as_committed,
    at,
    inserting,
    new_incident,
    note,
    posted,
    record,
    reserved,
    seed,
    stored_event,
    stored_id,
    with_ids,
)


def opening(incident: Incident, fingerprint: str = "fp-1") -> UnitOfWork:
    """A unit opening a reserved incident with an alert, an event, a notification and a
    timer, as a decision would."""
    incident_id = stored_id(incident)
    return inserting(
        incident,
        alerts=[(incident_id, alert_record(fingerprint))],
        events=[(incident_id, stored_event("opened", T0, key=incident.key))],
        outbox=[(incident_id, note("incident.opened", {"key": incident.key}))],
        timers=[(incident_id, Timer(TimerKind.ESCALATION, 1, at(60), T0))],
    )


async def test_reserved_ids_increase_and_are_never_an_incidents_id(store: Store) -> None:
    existing = await seed(store, new_incident("a"), new_incident("b"))
    assert await store.reserve_incident_ids(0) == []

    first = await store.reserve_incident_ids(3)
    second = await store.reserve_incident_ids(2)

    assert len(first) == 3 and len(second) == 2
    assert first == sorted(set(first)) and second == sorted(set(second))
    assert min(first) > max(stored_id(i) for i in existing)
    assert min(second) > max(first)  # successive reservations never overlap
    # An incident stored meanwhile gets an id past every reserved one...
    [numbered] = await seed(store, new_incident("c"))
    assert stored_id(numbered) > max(first + second)
    # ...so each reserved id can still be committed.
    for n, incident_id in enumerate(first + second):
        await store.commit(opening(new_incident(f"r{n}", id=incident_id)), T0)
    assert await store.get_incident(second[-1]) is not None
    assert len(await store.list_incidents(None, None, 10, None)) == 8


async def test_a_unit_refuses_an_incident_without_id_before_anything_is_written(
    store: Store,
) -> None:
    incident = await reserved(store, "db/primary")
    unit = opening(incident)
    with pytest.raises(ValueError, match="reserve"):
        unit.open(new_incident("db/replica"))
    with pytest.raises(ValueError, match="reserve"):
        unit.put(new_incident("db/replica"))
    with pytest.raises(ValueError, match="reserve"):
        UnitOfWork([new_incident("db/replica")], events=[(0, stored_event("opened", T0))])
    assert list(unit.incidents) == [incident.id]  # the unit holds only what it accepted
    assert await store.list_incidents(None, None, 10, None) == []
    assert await store.deliveries(None, None, 10) == []

    assert await store.commit(unit, T0) == Committed({stored_id(incident): 0})
    assert await store.list_incidents(None, None, 10, None) == [incident]


async def test_reserved_ids_stay_reserved_after_a_failed_commit(store: Store) -> None:
    ids = await store.reserve_incident_ids(2)
    twins = await with_ids(store, new_incident("same"), new_incident("same"))
    with pytest.raises(Conflict):  # one open incident per key
        await store.commit(inserting(*twins), T0)
    assert [await store.get_incident(stored_id(i)) for i in twins] == [None, None]

    [numbered] = await seed(store, new_incident("other"))
    assert stored_id(numbered) not in ids + [stored_id(i) for i in twins]
    for n, incident_id in enumerate(ids):
        await store.commit(opening(new_incident(f"r{n}", id=incident_id)), T0)
    # The ids of the failed unit are still free too: decided again, one twin is stored.
    await store.commit(opening(twins[1]), T0)
    assert await store.get_incident(stored_id(twins[1])) == twins[1]


async def test_incident_with_reserved_id_is_inserted_with_it_and_its_rows(store: Store) -> None:
    [updated] = await seed(store, new_incident("updated"))
    [incident_id] = await store.reserve_incident_ids(1)
    incident = new_incident("db/primary", id=incident_id)
    numbered = await reserved(store, "numbered")
    unit = opening(incident)
    unit.open(numbered)
    changed = replace(updated, summary="changed")
    unit.put(changed)

    committed = await store.commit(unit, at(1))

    assert committed == Committed({incident_id: 0, stored_id(numbered): 0, stored_id(updated): 1})
    assert stored_id(numbered) != incident_id
    assert await store.get_incident(incident_id) == incident
    assert await store.get_incident(stored_id(numbered)) == numbered
    assert await store.get_incident(stored_id(updated)) == as_committed(changed, committed)
    assert await store.alert_counts([incident_id]) == {incident_id: 1}
    assert await store.timeline(incident_id) == [stored_event("opened", T0, key="db/primary")]
    [delivery] = await store.deliveries(None, None, 10)
    assert (delivery.incident_id, delivery.kind) == (incident_id, "incident.opened")
    [due] = await store.claim_timers(at(60), 10, 30)
    assert (due.incident_id, due.step) == (incident_id, 1)
    [item] = await store.claim_outbox(at(1), 10, 30)
    assert (item.incident_id, item.payload) == (incident_id, {"key": "db/primary"})

    # Stored with version 0: the next decision updates it as read.
    still_down = replace(as_committed(incident, committed), summary="still down")
    assert await store.commit(UnitOfWork([still_down]), at(2)) == Committed({incident_id: 1})
    assert await store.get_incident(incident_id) == replace(still_down, version=1)


def clashing(clash: Incident, numbered: Incident) -> UnitOfWork:
    """A unit opening ``clash`` as ``opening`` does, and ``numbered`` with an event and a
    notification."""
    unit = opening(clash, "fp-2")
    unit.open(numbered)
    unit.events.append((stored_id(numbered), stored_event("opened", T0)))
    unit.notify(stored_id(numbered), note("incident.opened"))
    return unit


async def test_second_unit_with_a_taken_reserved_id_conflicts_and_stores_nothing(
    store: Store,
) -> None:
    [incident_id] = await store.reserve_incident_ids(1)
    await store.commit(opening(new_incident("a", id=incident_id)), at(1))
    before = (
        await store.list_incidents(None, None, 10, None),
        await store.timeline(incident_id),
        await store.deliveries(None, None, 10),
        await store.incident_alerts([incident_id]),
    )

    clash = new_incident("b", id=incident_id)
    numbered = await reserved(store, "c")
    with pytest.raises(Conflict):
        await store.commit(clashing(clash, numbered), at(2))

    assert await store.get_incident(stored_id(numbered)) is None
    assert await store.timeline(stored_id(numbered)) == []
    after = (
        await store.list_incidents(None, None, 10, None),
        await store.timeline(incident_id),
        await store.deliveries(None, None, 10),
        await store.incident_alerts([incident_id]),
    )
    assert after == before
    assert [i.key for i in after[0]] == ["a"]
    assert [t.incident_id for t in await store.claim_timers(at(60), 10, 30)] == [incident_id]

    # Deciding again with a new reservation stores the unit.
    [again] = await store.reserve_incident_ids(1)
    assert again > incident_id
    clash = replace(clash, id=again)
    committed = await store.commit(clashing(clash, numbered), at(3))
    assert committed == Committed({again: 0, stored_id(numbered): 0})
    assert (await store.get_incident(again)) == clash
    assert await store.get_incident(stored_id(numbered)) == numbered


async def test_prior_effects_of_incidents(store: Store) -> None:
    x, y, bare = await seed(store, new_incident("x"), new_incident("y"), new_incident("bare"))
    await record(store, Effect("jira_key", stored_id(x), ("OPS-1",)))
    await record(store, posted(stored_id(x), "C1", "9.0", "alerts"))
    await record(store, posted(stored_id(y), "C1", "5.0", "alerts"))
    await record(store, posted(stored_id(x), "C2", "1.0", "page"))  # older ts, recorded later
    # Effects recorded with a delivery's outcome count the same.
    await store.commit(UnitOfWork(outbox=[(stored_id(y), note("incident.opened"))]), T0)
    [item] = await store.claim_outbox(T0, 10, 30)
    effects = (
        Effect("jira_key", stored_id(y), ("OPS-2",)),
        Effect("slack_message", stored_id(y), ("C3", "7.0", "announce")),
    )
    await store.claim_outbox(
        at(1), 0, 30, [DeliveryOutcome(item.id, Outcome.SENT, effects=effects)]
    )
    unknown = stored_id(bare) + 1000

    prior = await store.prior_effects([stored_id(y), unknown, stored_id(x), stored_id(bare)])

    assert prior == {
        stored_id(x): Prior("OPS-1", (("C1", "9.0", "alerts"), ("C2", "1.0", "page"))),
        stored_id(y): Prior("OPS-2", (("C1", "5.0", "alerts"), ("C3", "7.0", "announce"))),
        stored_id(bare): Prior(),
        unknown: Prior(),
    }
    assert await store.prior_effects([]) == {}
    await store.close()
    assert await store.prior_effects([]) == {}  # nothing asked: the database is not touched


async def test_prior_effects_of_many_incidents_take_two_queries(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    incidents = await seed(store, *(new_incident(f"k{n}") for n in range(3)))
    await record(store, posted(stored_id(incidents[1]), "C1", "1.0", "alerts"))
    asked = [stored_id(i) for i in incidents] + list(range(10_000, 11_200))
    # Both backends read through their query; many ids are one argument, not many queries.
    queries: list[str] = []
    backend = store.backend  # type: ignore[attr-defined]
    read = backend.query

    async def counted(sql: str, *args: Any) -> list[Any]:
        queries.append(sql)
        result: list[Any] = await read(sql, *args)
        return result

    monkeypatch.setattr(backend, "query", counted)
    prior = await store.prior_effects(asked)

    assert len(queries) <= 2
    assert set(prior) == set(asked)
    assert prior[stored_id(incidents[1])] == Prior(None, (("C1", "1.0", "alerts"),))
    assert [p for p in prior.values() if p != Prior()] == [prior[stored_id(incidents[1])]]


async def test_two_sqlite_stores_on_one_file_reserve_alike_and_the_second_commit_conflicts(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "shared.db")
    one, two = SqliteStore(path), SqliteStore(path)
    await one.open()
    await two.open()
    try:
        ids = await one.reserve_incident_ids(3)
        [same] = await two.reserve_incident_ids(1)
        assert same in ids  # the reservation wrote nothing the other store could see
        await one.commit(inserting(*(new_incident(f"a{n}", id=i) for n, i in enumerate(ids))), T0)

        clash = new_incident("b", id=same)
        with pytest.raises(Conflict):
            await two.commit(opening(clash), T0)
        assert [i.key for i in await two.list_incidents(None, None, 10, None)] == [
            "a2",
            "a1",
            "a0",
        ]
        assert await two.deliveries(None, None, 10) == []

        # The next reservation skips past every id now stored, not only its own.
        [again] = await two.reserve_incident_ids(1)
        assert again > max(ids)
        clash = replace(clash, id=again)
        assert await two.commit(opening(clash), T0) == Committed({again: 0})
        assert await one.get_incident(again) == clash
    finally:
        await one.close()
        await two.close()
