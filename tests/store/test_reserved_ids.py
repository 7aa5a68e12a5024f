"""The Store interface: incident ids reserved ahead of a decision, inserted through
``UnitOfWork.new``, and the prior effects of incidents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from receiver.domain.delivery import Outcome, Prior
from receiver.domain.escalation import Timer, TimerKind
from receiver.domain.model import Incident
from receiver.store import Conflict, SqliteStore, Store, UnitOfWork
from receiver.store.base import DeliveryOutcome, Effect
from tests.store.builders import (
    T0,
    alert_record,
    at,
    new_incident,
    note,
    posted,
    record,
    seed,
    stored_event,
)


def stored_id(incident: Incident) -> int:
    assert isinstance(incident.id, int)
    return incident.id


def reserved(key: str, incident_id: int) -> Incident:
    """A new incident carrying a reserved id."""
    incident = new_incident(key)
    incident.id = incident_id
    return incident


def opening(incident: Incident, fingerprint: str = "fp-1") -> UnitOfWork:
    """A unit opening a reserved incident with an alert, an event, a notification and a
    timer, as a decision would."""
    return UnitOfWork(
        incidents=[incident],
        alerts=[(incident, alert_record(fingerprint))],
        events=[(incident, stored_event("opened", T0, key=incident.key))],
        outbox=[(incident, note("incident.opened", {"key": incident.key}))],
        timers=[(incident, Timer(TimerKind.ESCALATION, 1, at(60), T0))],
        new={stored_id(incident)},
    )


async def test_reserved_ids_increase_and_are_never_an_incidents_id(store: Store) -> None:
    existing = [new_incident("a"), new_incident("b")]
    await seed(store, *existing)
    assert await store.reserve_incident_ids(0) == []

    first = await store.reserve_incident_ids(3)
    second = await store.reserve_incident_ids(2)

    assert len(first) == 3 and len(second) == 2
    assert first == sorted(set(first)) and second == sorted(set(second))
    assert min(first) > max(stored_id(i) for i in existing)
    assert min(second) > max(first)  # successive reservations never overlap
    # The store numbers an incident without an id past every reserved one...
    numbered = new_incident("c")
    await seed(store, numbered)
    assert stored_id(numbered) not in first + second
    # ...so each reserved id can still be committed.
    for n, incident_id in enumerate(first + second):
        await store.commit(opening(reserved(f"r{n}", incident_id)), T0)
    assert await store.get_incident(second[-1]) is not None


async def test_reserved_ids_stay_reserved_after_a_failed_commit(store: Store) -> None:
    ids = await store.reserve_incident_ids(2)
    twins = [new_incident("same"), new_incident("same")]  # one open incident per key
    with pytest.raises(Conflict):
        await store.commit(UnitOfWork(incidents=twins), T0)
    assert [i.id for i in twins] == [None, None]

    numbered = new_incident("other")
    await seed(store, numbered)
    assert stored_id(numbered) not in ids
    for n, incident_id in enumerate(ids):
        await store.commit(opening(reserved(f"r{n}", incident_id)), T0)


async def test_incident_with_reserved_id_is_inserted_with_it_and_its_rows(store: Store) -> None:
    updated = new_incident("updated")
    await seed(store, updated)
    [incident_id] = await store.reserve_incident_ids(1)
    incident = reserved("db/primary", incident_id)
    numbered = new_incident("numbered")
    unit = opening(incident)
    unit.incidents += [numbered, updated]
    updated.summary = "changed"

    await store.commit(unit, at(1))

    assert incident.id == incident_id and incident.version == 0
    assert numbered.version == 0 and updated.version == 1
    assert stored_id(numbered) != incident_id
    assert await store.get_incident(incident_id) == incident
    assert await store.get_incident(stored_id(updated)) == updated
    assert await store.alert_counts([incident_id]) == {incident_id: 1}
    assert await store.timeline(incident_id) == [stored_event("opened", T0, key="db/primary")]
    [delivery] = await store.deliveries(None, None, 10)
    assert (delivery.incident_id, delivery.kind) == (incident_id, "incident.opened")
    [due] = await store.claim_timers(at(60), 10, 30)
    assert (due.incident_id, due.step) == (incident_id, 1)
    [item] = await store.claim_outbox(at(1), 10, 30)
    assert (item.incident_id, item.payload) == (incident_id, {"key": "db/primary"})

    # Stored with version 0: the next decision updates it as read.
    incident.summary = "still down"
    await store.commit(UnitOfWork(incidents=[incident]), at(2))
    assert incident.version == 1
    assert await store.get_incident(incident_id) == incident


async def test_second_unit_with_a_taken_reserved_id_conflicts_and_stores_nothing(
    store: Store,
) -> None:
    [incident_id] = await store.reserve_incident_ids(1)
    first = reserved("a", incident_id)
    await store.commit(opening(first), at(1))
    before = (
        await store.list_incidents(None, None, 10, None),
        await store.timeline(incident_id),
        await store.deliveries(None, None, 10),
        await store.incident_alerts([incident_id]),
    )

    clash = reserved("b", incident_id)
    numbered = new_incident("c")
    unit = opening(clash, "fp-2")
    unit.incidents.append(numbered)
    unit.events.append((numbered, stored_event("opened", T0)))
    unit.outbox.append((numbered, note("incident.opened")))
    with pytest.raises(Conflict):
        await store.commit(unit, at(2))

    assert clash.id == incident_id  # reserved, not given by the store: kept
    assert numbered.id is None  # given by the failed commit: taken back
    assert clash.version == 0
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
    clash.id = again
    unit.new = {again}
    await store.commit(unit, at(3))
    assert (await store.get_incident(again)) == clash
    assert await store.get_incident(stored_id(numbered)) == numbered


async def test_prior_effects_of_incidents(store: Store) -> None:
    x, y, bare = new_incident("x"), new_incident("y"), new_incident("bare")
    await seed(store, x, y, bare)
    await record(store, Effect("jira_key", stored_id(x), ("OPS-1",)))
    await record(store, posted(stored_id(x), "C1", "9.0", "alerts"))
    await record(store, posted(stored_id(y), "C1", "5.0", "alerts"))
    await record(store, posted(stored_id(x), "C2", "1.0", "page"))  # older ts, recorded later
    # Effects recorded with a delivery's outcome count the same.
    await store.commit(UnitOfWork(outbox=[(y, note("incident.opened"))]), T0)
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
    incidents = [new_incident(f"k{n}") for n in range(3)]
    await seed(store, *incidents)
    await record(store, posted(stored_id(incidents[1]), "C1", "1.0", "alerts"))
    asked = [stored_id(i) for i in incidents] + list(range(10_000, 11_200))
    # Both backends read through _all; more ids than an IN list chunk must not mean more.
    queries: list[str] = []
    read = store._all  # type: ignore[attr-defined]

    async def counted(sql: str, *args: Any) -> list[Any]:
        queries.append(sql)
        result: list[Any] = await read(sql, *args)
        return result

    monkeypatch.setattr(store, "_all", counted)
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
        await one.commit(
            UnitOfWork(incidents=[reserved(f"a{n}", i) for n, i in enumerate(ids)], new=set(ids)),
            T0,
        )

        clash = reserved("b", same)
        with pytest.raises(Conflict):
            await two.commit(opening(clash), T0)
        assert clash.id == same
        assert [i.key for i in await two.list_incidents(None, None, 10, None)] == [
            "a2",
            "a1",
            "a0",
        ]
        assert await two.deliveries(None, None, 10) == []

        # The next reservation skips past every id now stored, not only its own.
        [again] = await two.reserve_incident_ids(1)
        assert again > max(ids)
        clash.id = again
        await two.commit(opening(clash), T0)
        assert await one.get_incident(again) == clash
    finally:
        await one.close()
        await two.close()
