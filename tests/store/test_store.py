"""The Store interface: incidents, alerts, timeline, reads, concurrency and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from copy import deepcopy
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver.domain.model import AlertStatus, Incident, Status
from receiver.store import Conflict, Store, StoreUnavailable, UnitOfWork
from tests.postgres import postgres_schema
from tests.store.builders import (
    JOINED,
    T0,
    alert_record,
    at,
    joined,
    new_incident,
    note,
    seed,
    stored_event,
)
from tests.store.conftest import BACKENDS, make_store


def ids(incidents: list[Incident]) -> list[int | None]:
    return [i.id for i in incidents]


def stored_id(incident: Incident) -> int:
    assert isinstance(incident.id, int)
    return incident.id


# --- commit and the reads -------------------------------------------------------------------


async def test_commit_inserts_new_incident_with_its_rows(store: Store) -> None:
    incident = new_incident("db/primary")
    first = alert_record("fp-a", first_seen=T0)
    second = alert_record("fp-b", status=AlertStatus.RESOLVED, first_seen=at(1), last_seen=at(9))
    opened = stored_event("opened", T0, alerts=["fp-a", "fp-b"], nested={"n": [1, 2]})
    joined_event = stored_event("alert_joined", T0, fingerprint="fp-b")
    unit = UnitOfWork(
        incidents=[incident],
        alerts=[(incident, first), (incident, second)],
        events=[(incident, opened), (incident, joined_event)],
        outbox=[
            (incident, note("incident.opened", {"kind": "opened", "n": 1}, channel="jira")),
            (incident, note("incident.opened", {"kind": "opened", "n": 2}, channel="slack")),
        ],
    )

    await store.commit(unit, at(2))

    incident_id = stored_id(incident)
    assert incident.version == 0
    assert await store.get_incident(incident_id) == incident
    assert await store.incident_alerts([incident_id]) == {incident_id: [first, second]}
    assert await store.alert_counts([incident_id]) == {incident_id: 2}
    assert await store.timeline(incident_id) == [opened, joined_event]
    deliveries = await store.deliveries(None, incident_id, 10)
    assert [
        (d.incident_id, d.channel, d.kind, d.status, d.attempts, d.created_at, d.next_attempt_at)
        for d in deliveries
    ] == [
        (incident_id, "slack", "incident.opened", "pending", 0, at(2), at(2)),
        (incident_id, "jira", "incident.opened", "pending", 0, at(2), at(2)),
    ]
    assert [d.last_error for d in deliveries] == [None, None]
    assert deliveries[0].id > deliveries[1].id
    claimed = await store.claim_outbox(at(2), 10, 30)
    assert [(i.channel, i.payload) for i in claimed] == [
        ("jira", {"kind": "opened", "n": 1}),
        ("slack", {"kind": "opened", "n": 2}),
    ]


async def test_new_incidents_get_distinct_ids_in_unit_order(store: Store) -> None:
    incidents = [new_incident(f"key-{n}") for n in range(3)]
    await seed(store, *incidents)
    assigned = [stored_id(i) for i in incidents]
    assert assigned == sorted(assigned)
    assert len(set(assigned)) == 3
    for incident in incidents:
        assert await store.get_incident(stored_id(incident)) == incident


async def test_times_keep_microseconds_and_come_back_aware(store: Store) -> None:
    precise = T0.replace(microsecond=123_457)
    incident = replace(new_incident("db/primary", opened=precise), acknowledged_at=at(0.5))
    record = alert_record("fp-a", first_seen=precise, last_seen=precise + timedelta(days=400))
    event = stored_event("opened", precise)
    await store.commit(
        UnitOfWork(incidents=[incident], alerts=[(incident, record)], events=[(incident, event)]),
        precise,
    )
    incident_id = stored_id(incident)
    stored = await store.get_incident(incident_id)
    assert stored == incident
    assert stored is not None
    assert stored.opened_at.utcoffset() == timedelta(0)
    [stored_record] = (await store.incident_alerts([incident_id]))[incident_id]
    assert stored_record == record
    assert stored_record.first_seen.utcoffset() == timedelta(0)
    [stored_event_] = await store.timeline(incident_id)
    assert stored_event_ == event
    assert stored_event_.at.utcoffset() == timedelta(0)


async def test_empty_unit_writes_nothing(store: Store) -> None:
    await store.commit(UnitOfWork(), T0)
    assert await store.list_incidents(None, None, 10, None) == []
    assert await store.deliveries(None, None, 10) == []


async def test_get_incident_unknown_is_none(store: Store) -> None:
    await seed(store, new_incident("db/primary"))
    assert await store.get_incident(987_654_321) is None


async def test_update_bumps_version_and_stores_every_field(store: Store) -> None:
    incident = new_incident("db/primary")
    await seed(store, incident)

    incident.status = Status.ACKNOWLEDGED
    incident.acknowledged_at = at(60)
    incident.acknowledged_by = "alice"
    incident.severity = "warning"
    await store.commit(UnitOfWork(incidents=[incident]), at(60))
    assert incident.version == 1
    assert await store.get_incident(stored_id(incident)) == incident

    incident.status = Status.RESOLVED
    incident.resolved_at = at(120)
    incident.resolved_by = "bob"
    incident.jira_key = "OPS-17"
    incident.firing_alerts = 0
    incident.summary = "changed"
    incident.group_labels = {"alertname": "Other"}
    await store.commit(UnitOfWork(incidents=[incident]), at(120))
    assert incident.version == 2
    stored = await store.get_incident(stored_id(incident))
    assert stored == incident
    assert stored is not None
    assert stored.version == 2


async def test_alert_upsert_updates_the_stored_alert(store: Store) -> None:
    incident = new_incident("db/primary")
    firing = alert_record("fp-a", first_seen=T0)
    await store.commit(UnitOfWork(incidents=[incident], alerts=[(incident, firing)]), T0)

    resolved = replace(
        alert_record("fp-a", status=AlertStatus.RESOLVED, first_seen=T0, last_seen=at(300)),
        labels={"alertname": "DbDown", "instance": "fp-a", "extra": "x"},
        annotations={"summary": "recovered"},
        severity="warning",
        generator_url="http://elsewhere.example/",
    )
    await store.commit(UnitOfWork(alerts=[(incident, resolved)]), at(300))

    incident_id = stored_id(incident)
    assert await store.incident_alerts([incident_id]) == {incident_id: [resolved]}
    assert await store.alert_counts([incident_id]) == {incident_id: 1}


async def test_alert_upsert_keeps_first_seen(store: Store) -> None:
    incident = new_incident("db/primary")
    first = alert_record("fp-a", first_seen=T0)
    await store.commit(UnitOfWork(incidents=[incident], alerts=[(incident, first)]), T0)

    again = alert_record("fp-a", first_seen=at(500), last_seen=at(500))
    await store.commit(UnitOfWork(alerts=[(incident, again)]), at(500))

    incident_id = stored_id(incident)
    assert await store.incident_alerts([incident_id]) == {
        incident_id: [replace(again, first_seen=T0)]
    }


async def test_timeline_keeps_order_per_incident(store: Store) -> None:
    one, two = new_incident("one"), new_incident("two")
    e1 = stored_event("opened", T0, alerts=1)
    e2 = stored_event("alert_joined", T0, fingerprint="b")
    e3 = stored_event("alert_joined", T0, fingerprint="a")
    other = stored_event("opened", T0)
    await store.commit(
        UnitOfWork(
            incidents=[one, two],
            events=[(one, e1), (two, other), (one, e2), (one, e3)],
        ),
        T0,
    )
    e4 = stored_event("acknowledged", at(10), by="alice")
    e5 = stored_event("resolved", at(10), by="alertmanager")
    await store.commit(UnitOfWork(events=[(one, e4), (one, e5)]), at(10))

    assert await store.timeline(stored_id(one)) == [e1, e2, e3, e4, e5]
    assert await store.timeline(stored_id(two)) == [other]
    assert await store.timeline(987_654_321) == []


async def test_incident_alerts_order_and_limit(store: Store) -> None:
    one, two, empty = new_incident("one"), new_incident("two"), new_incident("empty")
    late = alert_record("fp-a", first_seen=at(3))
    early = alert_record("fp-z", first_seen=at(1))
    middle = alert_record("fp-m", first_seen=at(2))
    only = alert_record("fp-x", first_seen=at(5))
    await store.commit(
        UnitOfWork(
            incidents=[one, two, empty],
            alerts=[(one, late), (two, only), (one, early), (one, middle)],
        ),
        at(5),
    )
    a, b, c = stored_id(one), stored_id(two), stored_id(empty)

    assert await store.incident_alerts([a, b, c]) == {
        a: [early, middle, late],
        b: [only],
        c: [],
    }
    assert await store.incident_alerts([a, b, c], limit_per_incident=2) == {
        a: [early, middle],
        b: [only],
        c: [],
    }
    assert await store.incident_alerts([b]) == {b: [only]}
    assert await store.incident_alerts([]) == {}
    assert await store.alert_counts([a, b, c]) == {a: 3, b: 1, c: 0}


async def test_list_incidents_newest_first_with_filters_limit_and_cursor(store: Store) -> None:
    i1 = new_incident("k1", severity="critical", status=Status.RESOLVED)
    i2 = new_incident("k2", severity="warning", status=Status.TRIGGERED)
    i3 = new_incident("k3", severity="critical", status=Status.TRIGGERED)
    i4 = new_incident("k4", severity="critical", status=Status.ACKNOWLEDGED)
    i5 = new_incident("k5", severity="warning", status=Status.RESOLVED)
    i6 = new_incident("k6", severity="critical", status=Status.TRIGGERED)
    await seed(store, i1, i2, i3)
    await seed(store, i4, i5, i6, now=at(10))

    everything = await store.list_incidents(None, None, 100, None)
    assert everything == [i6, i5, i4, i3, i2, i1]
    assert ids(await store.list_incidents(None, None, 2, None)) == ids([i6, i5])
    assert ids(await store.list_incidents(None, None, 2, i5.id)) == ids([i4, i3])
    assert ids(await store.list_incidents(None, None, 100, i2.id)) == ids([i1])
    assert await store.list_incidents(None, None, 100, i1.id) == []
    assert ids(await store.list_incidents("triggered", None, 100, None)) == ids([i6, i3, i2])
    assert ids(await store.list_incidents("resolved", None, 100, None)) == ids([i5, i1])
    assert ids(await store.list_incidents(None, "critical", 100, None)) == ids([i6, i4, i3, i1])
    assert ids(await store.list_incidents("triggered", "critical", 100, None)) == ids([i6, i3])
    assert ids(await store.list_incidents("triggered", "critical", 1, i6.id)) == ids([i3])
    assert await store.list_incidents("acknowledged", "warning", 100, None) == []

    # Paging with the cursor walks everything exactly once.
    seen: list[int | None] = []
    cursor: int | None = None
    while page := await store.list_incidents(None, None, 4, cursor):
        seen += ids(page)
        cursor = page[-1].id
    assert seen == ids(everything)


async def test_open_counts_by_severity_and_status(store: Store) -> None:
    assert await store.open_counts() == {}
    await seed(
        store,
        new_incident("a", severity="critical", status=Status.TRIGGERED),
        new_incident("b", severity="critical", status=Status.TRIGGERED),
        new_incident("c", severity="critical", status=Status.ACKNOWLEDGED),
        new_incident("d", severity="warning", status=Status.TRIGGERED),
        new_incident("e", severity="warning", status=Status.RESOLVED),
        new_incident("f", severity="info", status=Status.RESOLVED),
    )
    assert await store.open_counts() == {
        ("critical", "triggered"): 2,
        ("critical", "acknowledged"): 1,
        ("warning", "triggered"): 1,
    }


# --- ingest_state ---------------------------------------------------------------------------


async def test_ingest_state_newest_incident_per_key_and_known_alerts_only(store: Store) -> None:
    old = new_incident("k0", status=Status.RESOLVED)
    old_alert = alert_record("fp-shared", status=AlertStatus.RESOLVED)
    await store.commit(UnitOfWork(incidents=[old], alerts=[(old, old_alert)]), T0)

    # 600 keys and 700 fingerprints cross any batching of the lookups.
    incidents = [new_incident(f"k{n}", opened=at(100)) for n in range(600)]
    resolved_only = new_incident("only-resolved", status=Status.RESOLVED)
    alerts = []
    for n, incident in enumerate(incidents):
        alerts.append((incident, alert_record(f"fp-{n}", first_seen=at(100))))
        if n % 3 == 0:  # stored, but not asked about
            alerts.append((incident, alert_record(f"fp-unasked-{n}", first_seen=at(100))))
    newest_shared = alert_record("fp-shared", first_seen=at(100))
    alerts.append((incidents[0], newest_shared))
    alerts.append((resolved_only, alert_record("fp-r", status=AlertStatus.RESOLVED)))
    await store.commit(UnitOfWork(incidents=[*incidents, resolved_only], alerts=alerts), at(100))

    # Each key is asked about its own fingerprints: the even ones, unknown ones, and one
    # stored under another incident (fp-1 belongs to k1, asked under k0).
    wanted: dict[str, list[str]] = {f"k{n}": [f"fp-unknown-{n}"] for n in range(600)}
    for n in range(0, 600, 2):
        wanted[f"k{n}"].append(f"fp-{n}")
    wanted["k0"] += ["fp-shared", "fp-0", "fp-1"]
    wanted["only-resolved"] = ["fp-r"]
    wanted["never-seen"] = ["fp-2"]
    latest, known = await store.ingest_state(wanted)

    assert latest == {i.key: i for i in [*incidents, resolved_only]}
    assert latest["k0"].id == incidents[0].id != old.id
    expected = {
        stored_id(incidents[n]): {f"fp-{n}": alert_record(f"fp-{n}", first_seen=at(100))}
        for n in range(0, 600, 2)
    }
    expected[stored_id(incidents[0])]["fp-shared"] = newest_shared
    expected[stored_id(resolved_only)] = {"fp-r": alert_record("fp-r", status=AlertStatus.RESOLVED)}
    assert {i: found for i, found in known.items() if found} == expected
    assert set(known) <= {stored_id(i) for i in latest.values()}

    # The per-incident reads cross the same batching.
    all_ids = [stored_id(i) for i in incidents]
    assert await store.alert_counts(all_ids) == {
        stored_id(incident): 1 + (n % 3 == 0) + (n == 0) for n, incident in enumerate(incidents)
    }
    first_alerts = await store.incident_alerts(all_ids, limit_per_incident=1)
    assert list(first_alerts) == all_ids
    assert all(len(found) == 1 for found in first_alerts.values())


async def test_ingest_state_of_nothing(store: Store) -> None:
    await seed(store, new_incident("k"))
    assert await store.ingest_state({}) == ({}, {})
    latest, known = await store.ingest_state({"unknown": ["fp-a"]})
    assert latest == {}
    assert not any(known.values())


# --- optimistic concurrency -----------------------------------------------------------------


async def test_one_stale_incident_among_several_updates_conflicts_them_all(store: Store) -> None:
    incidents = [new_incident(f"k{n}") for n in range(4)]
    await seed(store, *incidents)
    copies = [await store.get_incident(stored_id(i)) for i in incidents]
    assert all(c is not None for c in copies)
    stale = await store.get_incident(stored_id(incidents[2]))
    assert stale is not None
    stale.summary = "changed meanwhile"
    await store.commit(UnitOfWork(incidents=[stale]), at(5))

    changed = []
    for n, copy_n in enumerate(copies):
        assert copy_n is not None
        copy_n.firing_alerts, copy_n.summary = 7 + n, f"updated {n}"
        changed.append(copy_n)
    with pytest.raises(Conflict):
        await store.commit(UnitOfWork(incidents=changed), at(10))
    assert [c.version for c in changed] == [0, 0, 0, 0]
    stored = [await store.get_incident(stored_id(i)) for i in incidents]
    summaries = [f"k{n} is down — zone ü" for n in range(4)]
    summaries[2] = "changed meanwhile"
    assert [s.summary for s in stored if s] == summaries

    fresh = await store.get_incident(stored_id(incidents[2]))
    assert fresh is not None
    changed[2] = fresh
    for n, copy_n in enumerate(changed):
        copy_n.firing_alerts, copy_n.summary = 7 + n, f"updated {n}"
    await store.commit(UnitOfWork(incidents=changed), at(20))
    assert [c.version for c in changed] == [1, 1, 2, 1]
    stored = [await store.get_incident(stored_id(i)) for i in incidents]
    assert stored == changed


async def test_stale_copy_conflicts_and_writes_nothing(store: Store) -> None:
    incident = new_incident("db/primary")
    first_alert = alert_record("fp-a")
    await store.commit(
        UnitOfWork(
            incidents=[incident],
            alerts=[(incident, first_alert)],
            events=[(incident, stored_event("opened", T0))],
            outbox=[(incident, joined("db/primary", 1, "fp-a"))],
        ),
        T0,
    )
    incident_id = stored_id(incident)
    copy_a = await store.get_incident(incident_id)
    copy_b = await store.get_incident(incident_id)
    assert copy_a is not None
    assert copy_b is not None
    assert copy_a is not copy_b

    copy_a.status = Status.ACKNOWLEDGED
    copy_a.acknowledged_at = at(10)
    copy_a.acknowledged_by = "alice"
    await store.commit(
        UnitOfWork(incidents=[copy_a], events=[(copy_a, stored_event("acknowledged", at(10)))]),
        at(10),
    )
    assert copy_a.version == 1
    timeline_before = await store.timeline(incident_id)
    deliveries_before = await store.deliveries(None, incident_id, 10)

    copy_b.status = Status.RESOLVED
    copy_b.resolved_at = at(20)
    copy_b.resolved_by = "bob"
    newcomer = new_incident("db/replica")
    unit = UnitOfWork(
        incidents=[newcomer, copy_b],
        alerts=[(copy_b, alert_record("fp-new")), (newcomer, alert_record("fp-n"))],
        events=[(copy_b, stored_event("resolved", at(20))), (newcomer, stored_event("x", T0))],
        outbox=[
            (copy_b, joined("db/primary", 2, "fp-new")),  # would fold into the waiting row
            (copy_b, note("incident.resolved", channel="jira")),  # would release it
            (copy_b, note("incident.resolved", channel="slack")),
            (newcomer, note("incident.opened")),
        ],
    )
    with pytest.raises(Conflict):
        await store.commit(unit, at(20))

    assert copy_b.version == 0
    assert newcomer.id is None
    assert await store.get_incident(incident_id) == copy_a
    assert await store.incident_alerts([incident_id]) == {incident_id: [first_alert]}
    assert await store.timeline(incident_id) == timeline_before
    assert await store.deliveries(None, incident_id, 10) == deliveries_before
    assert ids(await store.list_incidents(None, None, 10, None)) == [incident_id]
    assert await store.outbox_stats(at(20)) == (1, 20.0)
    # The waiting row neither took the stale payload nor was released.
    assert await store.claim_outbox(at(59), 10, 30) == []
    [waiting] = await store.claim_outbox(at(60), 10, 30)
    assert waiting.kind == JOINED
    assert waiting.payload == joined("db/primary", 1, "fp-a").payload

    # Decided again on a fresh read, the change commits.
    fresh = await store.get_incident(incident_id)
    assert fresh is not None
    fresh.status = Status.RESOLVED
    await store.commit(UnitOfWork(incidents=[fresh]), at(30))
    assert fresh.version == 2
    assert await store.get_incident(incident_id) == fresh


async def test_conflicting_unit_rolls_back_its_other_updates(store: Store) -> None:
    one, two = new_incident("one"), new_incident("two")
    await seed(store, one, two)
    stale_two = deepcopy(two)
    two.summary = "changed first"
    await store.commit(UnitOfWork(incidents=[two]), at(1))

    one.summary = "would change"
    stale_two.summary = "stale"
    with pytest.raises(Conflict):
        await store.commit(UnitOfWork(incidents=[one, stale_two]), at(2))

    assert one.version == 0
    assert stale_two.version == 0
    stored_one = await store.get_incident(stored_id(one))
    assert stored_one is not None
    assert (stored_one.summary, stored_one.version) == ("one is down — zone ü", 0)
    assert await store.get_incident(stored_id(two)) == two


async def test_second_open_incident_for_a_key_conflicts(store: Store) -> None:
    first = new_incident("db/primary")
    await store.commit(
        UnitOfWork(incidents=[first], events=[(first, stored_event("opened", T0))]), T0
    )
    second = new_incident("db/primary", opened=at(5))
    with pytest.raises(Conflict):
        await store.commit(
            UnitOfWork(
                incidents=[second],
                alerts=[(second, alert_record("fp-b"))],
                events=[(second, stored_event("opened", at(5)))],
                outbox=[(second, note("incident.opened"))],
            ),
            at(5),
        )

    assert second.id is None
    assert await store.list_incidents(None, None, 10, None) == [first]
    latest, _ = await store.ingest_state({"db/primary": ["fp-b"]})
    assert latest == {"db/primary": first}
    assert await store.deliveries(None, None, 10) == []
    assert await store.outbox_stats(at(5)) == (0, 0.0)

    # Once the first is resolved, the key may open again.
    first.status = Status.RESOLVED
    first.resolved_at = at(6)
    await store.commit(UnitOfWork(incidents=[first]), at(6))
    await store.commit(UnitOfWork(incidents=[second]), at(7))
    assert ids(await store.list_incidents(None, None, 10, None)) == [second.id, first.id]


async def test_failed_commit_leaves_new_ids_unset_so_a_retry_inserts(store: Store) -> None:
    first = new_incident("same")
    twin = new_incident("same")
    other = new_incident("other")
    unit = UnitOfWork(
        incidents=[first, other, twin],
        alerts=[(first, alert_record("fp-1")), (other, alert_record("fp-2"))],
        events=[(other, stored_event("opened", T0))],
        outbox=[(first, note("incident.opened")), (other, note("incident.opened"))],
    )
    with pytest.raises(Conflict):
        await store.commit(unit, T0)

    assert ids([first, other, twin]) == [None, None, None]
    assert await store.list_incidents(None, None, 10, None) == []
    assert await store.deliveries(None, None, 10) == []

    unit.incidents = [first, other]  # the twin dropped (by identity: it equals `first`)
    await store.commit(unit, T0)
    assert twin.id is None
    assert await store.list_incidents(None, None, 10, None) == [other, first]
    assert await store.alert_counts([stored_id(first), stored_id(other)]) == {
        stored_id(first): 1,
        stored_id(other): 1,
    }
    assert await store.timeline(stored_id(other)) == [stored_event("opened", T0)]
    assert [d.incident_id for d in await store.deliveries(None, None, 10)] == [
        other.id,
        first.id,
    ]


# --- lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_installation_id_is_made_once_per_database(backend: str, tmp_path: Path) -> None:
    """Random per database, the same for every replica and after a restart, and new for a
    new database: JIRA labels carry it, so two installations never share an issue."""
    async with contextlib.AsyncExitStack() as stack:
        schemas: list[str | None] = [None, None]
        if backend == "postgres":
            schemas = [await stack.enter_async_context(postgres_schema()) for _ in range(2)]
        (tmp_path / "other").mkdir()
        stores = [
            make_store(backend, tmp_path, schemas[0]),
            make_store(backend, tmp_path, schemas[0]),  # a second replica on the same database
            make_store(backend, tmp_path / "other", schemas[1]),  # another database
        ]
        await asyncio.gather(*(s.open() for s in stores))  # replicas may start together
        for opened in stores:
            stack.push_async_callback(opened.close)
        first, replica, other = [await s.installation_id() for s in stores]
        assert re.fullmatch("[0-9a-f]{12}", first)
        assert replica == first and other != first
        await stores[0].close()
        await stores[0].open()
        assert await stores[0].installation_id() == first


async def test_ping_on_open_store(store: Store) -> None:
    await store.ping()  # raises StoreUnavailable when the store cannot be reached
    await store.ping()


async def test_every_call_on_a_closed_store_is_unavailable(store: Store) -> None:
    incident = new_incident("db/primary")
    await seed(store, incident)
    incident_id = stored_id(incident)
    await store.close()

    fresh = new_incident("db/replica")
    calls: list[Callable[[], Awaitable[Any]]] = [
        store.ping,
        lambda: store.ingest_state({"db/primary": ["fp-a"]}),
        lambda: store.commit(UnitOfWork(incidents=[fresh]), T0),
        lambda: store.list_incidents(None, None, 10, None),
        lambda: store.get_incident(incident_id),
        lambda: store.incident_alerts([incident_id]),
        lambda: store.alert_counts([incident_id]),
        lambda: store.timeline(incident_id),
        store.open_counts,
        lambda: store.claim_outbox(T0, 10, 30),
        lambda: store.outbox_stats(T0),
        lambda: store.deliveries(None, None, 10),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            await call()
    assert fresh.id is None


# --- concurrent callers ---------------------------------------------------------------------


async def test_concurrent_commits_of_two_copies_one_conflicts(store: Store) -> None:
    incident = new_incident("db/primary")
    await seed(store, incident)
    copy_a = await store.get_incident(stored_id(incident))
    copy_b = await store.get_incident(stored_id(incident))
    assert copy_a is not None
    assert copy_b is not None
    copy_a.summary, copy_b.summary = "from a", "from b"

    results = await asyncio.gather(
        store.commit(UnitOfWork(incidents=[copy_a]), at(1)),
        store.commit(UnitOfWork(incidents=[copy_b]), at(1)),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"]
    winner = copy_a if results[0] is None else copy_b
    assert winner.version == 1
    assert await store.get_incident(stored_id(incident)) == winner


async def test_concurrent_new_incidents_for_one_key_one_conflicts(store: Store) -> None:
    first, second = new_incident("db/primary"), new_incident("db/primary")
    results = await asyncio.gather(
        store.commit(UnitOfWork(incidents=[first]), T0),
        store.commit(UnitOfWork(incidents=[second]), T0),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"]
    winner, loser = (first, second) if results[0] is None else (second, first)
    assert loser.id is None
    assert await store.list_incidents(None, None, 10, None) == [winner]


async def test_many_concurrent_commits_all_land(store: Store) -> None:
    incidents = [new_incident(f"key-{n}") for n in range(20)]
    await asyncio.gather(
        *(
            store.commit(UnitOfWork(incidents=[i], events=[(i, stored_event("opened", T0))]), T0)
            for i in incidents
        )
    )
    assert len({stored_id(i) for i in incidents}) == 20
    stored = await store.list_incidents(None, None, 100, None)
    assert sorted(map(stored_id, stored)) == sorted(map(stored_id, incidents))
    for incident in incidents:
        assert await store.timeline(stored_id(incident)) == [stored_event("opened", T0)]


async def test_cancelled_commit_leaves_objects_matching_the_store(store: Store) -> None:
    existing = new_incident("db/replica")
    await seed(store, existing)
    incident = new_incident("db/primary")
    existing.summary = "changed"
    unit = UnitOfWork(incidents=[incident, existing])

    task = asyncio.create_task(store.commit(unit, at(1)))
    await asyncio.sleep(0)  # let it start, then cancel it mid-flight
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    stored = await store.list_incidents(None, None, 10, None)
    stored_existing = await store.get_incident(stored_id(existing))
    assert stored_existing is not None
    if len(stored) == 2:  # it committed anyway: the objects must say so
        assert incident.id == stored[0].id
        assert stored[0] == incident
        assert existing.version == stored_existing.version == 1
    else:  # it did not: a retry must insert again and update from the version read
        assert incident.id is None
        assert existing.version == stored_existing.version == 0
    # Either way the objects can be committed on from here without a spurious conflict.
    existing.summary = "changed again"
    await store.commit(UnitOfWork(incidents=[existing]), at(2))
    assert await store.get_incident(stored_id(existing)) == existing
