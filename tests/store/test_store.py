"""The Store interface: incidents, alerts, timeline, reads, concurrency and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver.domain.model import AlertStatus, Incident, Status
from receiver.store import Conflict, Store, StoreUnavailable, UnitOfWork
from receiver.store.base import Committed
from tests.postgres import postgres_schema
from tests.store.builders import (
    JOINED,
    T0,
    alert_record,
    as_committed,
    at,
    inserting,
    joined,
    new_incident,
    note,
    read,
    reserved,
    seed,
    stored_event,
    stored_id,
    with_ids,
)
from tests.store.conftest import BACKENDS, make_store


def ids(incidents: list[Incident]) -> list[int | None]:
    return [i.id for i in incidents]


# --- commit and the reads -------------------------------------------------------------------


async def test_commit_inserts_new_incident_with_its_rows(store: Store) -> None:
    incident = await reserved(store, "db/primary")
    incident_id = stored_id(incident)
    first = alert_record("fp-a", first_seen=T0)
    second = alert_record("fp-b", status=AlertStatus.RESOLVED, first_seen=at(1), last_seen=at(9))
    opened = stored_event("opened", T0, alerts=["fp-a", "fp-b"], nested={"n": [1, 2]})
    joined_event = stored_event("alert_joined", T0, fingerprint="fp-b")
    unit = inserting(
        incident,
        alerts=[(incident_id, first), (incident_id, second)],
        events=[(incident_id, opened), (incident_id, joined_event)],
        outbox=[
            (incident_id, note("incident.opened", {"kind": "opened", "n": 1}, channel="jira")),
            (incident_id, note("incident.opened", {"kind": "opened", "n": 2}, channel="slack")),
        ],
    )

    assert await store.commit(unit, at(2)) == Committed({incident_id: 0})

    assert await store.get_incident(incident_id) == incident
    assert incident.version == 0
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


async def test_new_incidents_get_distinct_increasing_ids_and_are_stored_under_them(
    store: Store,
) -> None:
    incidents = await seed(store, *(new_incident(f"key-{n}") for n in range(3)))
    assigned = [stored_id(i) for i in incidents]
    assert assigned == sorted(assigned)
    assert len(set(assigned)) == 3
    for incident in incidents:
        assert await store.get_incident(stored_id(incident)) == incident
    assert await store.list_incidents(None, None, 10, None) == incidents[::-1]

    # Stored under the id each carries, whatever the order of the unit.
    later = await with_ids(store, *(new_incident(f"later-{n}") for n in range(3)))
    await store.commit(inserting(*reversed(later)), at(1))
    for incident in later:
        assert await store.get_incident(stored_id(incident)) == incident
    assert [i.key for i in await store.list_incidents(None, None, 3, None)] == [
        "later-2",
        "later-1",
        "later-0",
    ]


async def test_times_keep_microseconds_and_come_back_aware(store: Store) -> None:
    precise = T0.replace(microsecond=123_457)
    incident = replace(await reserved(store, "db/primary", opened=precise), acknowledged_at=at(0.5))
    incident_id = stored_id(incident)
    record = alert_record("fp-a", first_seen=precise, last_seen=precise + timedelta(days=400))
    event = stored_event("opened", precise)
    await store.commit(
        inserting(incident, alerts=[(incident_id, record)], events=[(incident_id, event)]),
        precise,
    )
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
    assert await store.commit(UnitOfWork(), T0) == Committed({})
    assert await store.list_incidents(None, None, 10, None) == []
    assert await store.deliveries(None, None, 10) == []


async def test_get_incident_unknown_is_none(store: Store) -> None:
    await seed(store, new_incident("db/primary"))
    assert await store.get_incident(987_654_321) is None


async def test_update_bumps_version_and_stores_every_field(store: Store) -> None:
    [incident] = await seed(store, new_incident("db/primary"))
    incident_id = stored_id(incident)

    acked = replace(
        incident,
        status=Status.ACKNOWLEDGED,
        acknowledged_at=at(60),
        acknowledged_by="alice",
        mitigated_at=at(90),
        mitigated_by="carol",
        severity="warning",
    )
    committed = await store.commit(UnitOfWork([acked]), at(60))
    assert committed == Committed({incident_id: 1})
    assert acked.version == 0  # the store wrote nothing into it
    assert await store.get_incident(incident_id) == replace(acked, version=1)

    resolved = replace(
        as_committed(acked, committed),
        status=Status.RESOLVED,
        resolved_at=at(120),
        resolved_by="bob",
        reported_at=at(150),
        reported_by="dave",
        jira_key="OPS-17",
        firing_alerts=0,
        summary="changed",
        group_labels={"alertname": "Other"},
    )
    assert await store.commit(UnitOfWork([resolved]), at(120)) == Committed({incident_id: 2})
    stored = await store.get_incident(incident_id)
    assert stored == replace(resolved, version=2)
    assert stored is not None
    assert stored.version == 2


async def test_alert_upsert_updates_the_stored_alert(store: Store) -> None:
    incident = await reserved(store, "db/primary")
    incident_id = stored_id(incident)
    firing = alert_record("fp-a", first_seen=T0)
    await store.commit(inserting(incident, alerts=[(incident_id, firing)]), T0)

    resolved = replace(
        alert_record("fp-a", status=AlertStatus.RESOLVED, first_seen=T0, last_seen=at(300)),
        labels={"alertname": "DbDown", "instance": "fp-a", "extra": "x"},
        annotations={"summary": "recovered"},
        severity="warning",
        generator_url="http://elsewhere.example/",
    )
    assert await store.commit(UnitOfWork(alerts=[(incident_id, resolved)]), at(300)) == Committed(
        {}
    )

    assert await store.incident_alerts([incident_id]) == {incident_id: [resolved]}
    assert await store.alert_counts([incident_id]) == {incident_id: 1}
    assert await store.get_incident(incident_id) == incident  # its row untouched: version 0


async def test_alert_upsert_keeps_first_seen(store: Store) -> None:
    incident = await reserved(store, "db/primary")
    incident_id = stored_id(incident)
    first = alert_record("fp-a", first_seen=T0)
    await store.commit(inserting(incident, alerts=[(incident_id, first)]), T0)

    again = alert_record("fp-a", first_seen=at(500), last_seen=at(500))
    await store.commit(UnitOfWork(alerts=[(incident_id, again)]), at(500))

    assert await store.incident_alerts([incident_id]) == {
        incident_id: [replace(again, first_seen=T0)]
    }


async def test_timeline_keeps_order_per_incident(store: Store) -> None:
    one, two = await with_ids(store, new_incident("one"), new_incident("two"))
    a, b = stored_id(one), stored_id(two)
    e1 = stored_event("opened", T0, alerts=1)
    e2 = stored_event("alert_joined", T0, fingerprint="b")
    e3 = stored_event("alert_joined", T0, fingerprint="a")
    other = stored_event("opened", T0)
    await store.commit(
        inserting(one, two, events=[(a, e1), (b, other), (a, e2), (a, e3)]),
        T0,
    )
    e4 = stored_event("acknowledged", at(10), by="alice")
    e5 = stored_event("resolved", at(10), by="alertmanager")
    await store.commit(UnitOfWork(events=[(a, e4), (a, e5)]), at(10))

    assert await store.timeline(a) == [e1, e2, e3, e4, e5]
    assert await store.timeline(b) == [other]
    assert await store.timeline(987_654_321) == []


async def test_incident_alerts_order_and_limit(store: Store) -> None:
    one, two, empty = await with_ids(
        store, new_incident("one"), new_incident("two"), new_incident("empty")
    )
    a, b, c = stored_id(one), stored_id(two), stored_id(empty)
    late = alert_record("fp-a", first_seen=at(3))
    early = alert_record("fp-z", first_seen=at(1))
    middle = alert_record("fp-m", first_seen=at(2))
    only = alert_record("fp-x", first_seen=at(5))
    await store.commit(
        inserting(one, two, empty, alerts=[(a, late), (b, only), (a, early), (a, middle)]),
        at(5),
    )

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
    i1, i2, i3 = await seed(
        store,
        new_incident("k1", severity="critical", status=Status.RESOLVED),
        new_incident("k2", severity="warning", status=Status.TRIGGERED),
        new_incident("k3", severity="critical", status=Status.TRIGGERED),
    )
    i4, i5, i6 = await seed(
        store,
        new_incident("k4", severity="critical", status=Status.ACKNOWLEDGED),
        new_incident("k5", severity="warning", status=Status.RESOLVED),
        new_incident("k6", severity="critical", status=Status.TRIGGERED),
        now=at(10),
    )

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
    old = await reserved(store, "k0", status=Status.RESOLVED)
    old_alert = alert_record("fp-shared", status=AlertStatus.RESOLVED)
    await store.commit(inserting(old, alerts=[(stored_id(old), old_alert)]), T0)

    # 600 keys and 700 fingerprints cross any batching of the lookups.
    *incidents, resolved_only = await with_ids(
        store,
        *(new_incident(f"k{n}", opened=at(100)) for n in range(600)),
        new_incident("only-resolved", status=Status.RESOLVED),
    )
    alerts = []
    for n, incident in enumerate(incidents):
        alerts.append((stored_id(incident), alert_record(f"fp-{n}", first_seen=at(100))))
        if n % 3 == 0:  # stored, but not asked about
            alerts.append(
                (stored_id(incident), alert_record(f"fp-unasked-{n}", first_seen=at(100)))
            )
    newest_shared = alert_record("fp-shared", first_seen=at(100))
    alerts.append((stored_id(incidents[0]), newest_shared))
    alerts.append((stored_id(resolved_only), alert_record("fp-r", status=AlertStatus.RESOLVED)))
    await store.commit(inserting(*incidents, resolved_only, alerts=alerts), at(100))

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
    incidents = await seed(store, *(new_incident(f"k{n}") for n in range(4)))
    all_ids = [stored_id(i) for i in incidents]
    copies = [await read(store, i) for i in all_ids]
    stale = await read(store, all_ids[2])
    await store.commit(UnitOfWork([replace(stale, summary="changed meanwhile")]), at(5))

    changed = [
        replace(copy_n, firing_alerts=7 + n, summary=f"updated {n}")
        for n, copy_n in enumerate(copies)
    ]
    with pytest.raises(Conflict):
        await store.commit(UnitOfWork(changed), at(10))
    stored = [await read(store, i) for i in all_ids]
    summaries = [f"k{n} is down — zone ü" for n in range(4)]
    summaries[2] = "changed meanwhile"
    assert [s.summary for s in stored] == summaries
    assert [s.version for s in stored] == [0, 0, 1, 0]

    changed[2] = replace(await read(store, all_ids[2]), firing_alerts=9, summary="updated 2")
    committed = await store.commit(UnitOfWork(changed), at(20))
    assert committed == Committed(dict(zip(all_ids, [1, 1, 2, 1], strict=True)))
    stored = [await read(store, i) for i in all_ids]
    assert stored == [as_committed(c, committed) for c in changed]


async def test_stale_copy_conflicts_and_writes_nothing(store: Store) -> None:
    incident = await reserved(store, "db/primary")
    incident_id = stored_id(incident)
    first_alert = alert_record("fp-a")
    await store.commit(
        inserting(
            incident,
            alerts=[(incident_id, first_alert)],
            events=[(incident_id, stored_event("opened", T0))],
            outbox=[(incident_id, joined("db/primary", 1, "fp-a"))],
        ),
        T0,
    )
    copy_a = await read(store, incident_id)
    copy_b = await read(store, incident_id)
    assert copy_a is not copy_b

    acked = replace(
        copy_a, status=Status.ACKNOWLEDGED, acknowledged_at=at(10), acknowledged_by="alice"
    )
    committed = await store.commit(
        UnitOfWork([acked], events=[(incident_id, stored_event("acknowledged", at(10)))]),
        at(10),
    )
    assert committed == Committed({incident_id: 1})
    acked = as_committed(acked, committed)
    assert await store.get_incident(incident_id) == acked
    timeline_before = await store.timeline(incident_id)
    deliveries_before = await store.deliveries(None, incident_id, 10)

    resolved = replace(copy_b, status=Status.RESOLVED, resolved_at=at(20), resolved_by="bob")
    newcomer = await reserved(store, "db/replica")
    newcomer_id = stored_id(newcomer)
    unit = UnitOfWork(
        [newcomer, resolved],
        new=[newcomer_id],
        alerts=[(incident_id, alert_record("fp-new")), (newcomer_id, alert_record("fp-n"))],
        events=[
            (incident_id, stored_event("resolved", at(20))),
            (newcomer_id, stored_event("x", T0)),
        ],
        outbox=[
            (incident_id, joined("db/primary", 2, "fp-new")),  # would fold into the waiting row
            (incident_id, note("incident.resolved", channel="jira")),  # would release it
            (incident_id, note("incident.resolved", channel="slack")),
            (newcomer_id, note("incident.opened")),
        ],
    )
    with pytest.raises(Conflict):
        await store.commit(unit, at(20))

    assert await store.get_incident(newcomer_id) is None
    assert await store.timeline(newcomer_id) == []
    assert await store.get_incident(incident_id) == acked
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
    fresh = replace(await read(store, incident_id), status=Status.RESOLVED)
    assert await store.commit(UnitOfWork([fresh]), at(30)) == Committed({incident_id: 2})
    assert await store.get_incident(incident_id) == replace(fresh, version=2)


async def test_conflicting_unit_rolls_back_its_other_updates(store: Store) -> None:
    one, two = await seed(store, new_incident("one"), new_incident("two"))
    changed_two = replace(two, summary="changed first")
    changed_two = as_committed(changed_two, await store.commit(UnitOfWork([changed_two]), at(1)))

    with pytest.raises(Conflict):
        await store.commit(
            UnitOfWork([replace(one, summary="would change"), replace(two, summary="stale")]),
            at(2),
        )

    stored_one = await read(store, stored_id(one))
    assert (stored_one.summary, stored_one.version) == ("one is down — zone ü", 0)
    assert stored_one == one
    assert await store.get_incident(stored_id(two)) == changed_two


async def test_second_open_incident_for_a_key_conflicts(store: Store) -> None:
    first = await reserved(store, "db/primary")
    await store.commit(
        inserting(first, events=[(stored_id(first), stored_event("opened", T0))]), T0
    )
    second = await reserved(store, "db/primary", opened=at(5))
    second_id = stored_id(second)
    with pytest.raises(Conflict):
        await store.commit(
            inserting(
                second,
                alerts=[(second_id, alert_record("fp-b"))],
                events=[(second_id, stored_event("opened", at(5)))],
                outbox=[(second_id, note("incident.opened"))],
            ),
            at(5),
        )

    assert await store.get_incident(second_id) is None
    assert await store.list_incidents(None, None, 10, None) == [first]
    latest, _ = await store.ingest_state({"db/primary": ["fp-b"]})
    assert latest == {"db/primary": first}
    assert await store.deliveries(None, None, 10) == []
    assert await store.outbox_stats(at(5)) == (0, 0.0)

    # Once the first is resolved, the key may open again (under the id reserved for it).
    await store.commit(
        UnitOfWork([replace(first, status=Status.RESOLVED, resolved_at=at(6))]), at(6)
    )
    await store.commit(inserting(second), at(7))
    assert ids(await store.list_incidents(None, None, 10, None)) == [second_id, first.id]
    assert await store.get_incident(second_id) == second


async def test_failed_commit_stores_nothing_so_a_retry_inserts_under_the_reserved_ids(
    store: Store,
) -> None:
    first, other, twin = await with_ids(
        store, new_incident("same"), new_incident("other"), new_incident("same")
    )
    a, b, c = stored_id(first), stored_id(other), stored_id(twin)
    unit = inserting(
        first,
        other,
        twin,
        alerts=[(a, alert_record("fp-1")), (b, alert_record("fp-2"))],
        events=[(b, stored_event("opened", T0))],
        outbox=[(a, note("incident.opened")), (b, note("incident.opened"))],
    )
    with pytest.raises(Conflict):  # one open incident per key
        await store.commit(unit, T0)

    assert await store.list_incidents(None, None, 10, None) == []
    assert await store.deliveries(None, None, 10) == []
    assert await store.alert_counts([a, b, c]) == {a: 0, b: 0, c: 0}

    del unit.incidents[c]  # the twin dropped
    unit.new.discard(c)
    assert await store.commit(unit, T0) == Committed({a: 0, b: 0})
    assert await store.get_incident(c) is None
    assert await store.list_incidents(None, None, 10, None) == [other, first]
    assert await store.alert_counts([a, b]) == {a: 1, b: 1}
    assert await store.timeline(b) == [stored_event("opened", T0)]
    assert [d.incident_id for d in await store.deliveries(None, None, 10)] == [b, a]


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
    [incident] = await seed(store, new_incident("db/primary"))
    incident_id = stored_id(incident)
    fresh = await reserved(store, "db/replica")
    await store.close()

    calls: list[Callable[[], Awaitable[Any]]] = [
        store.ping,
        lambda: store.ingest_state({"db/primary": ["fp-a"]}),
        lambda: store.reserve_incident_ids(1),
        lambda: store.commit(inserting(fresh), T0),
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

    await store.open()  # nothing was written meanwhile
    assert await store.list_incidents(None, None, 10, None) == [incident]


# --- concurrent callers ---------------------------------------------------------------------


async def test_concurrent_commits_of_two_copies_one_conflicts(store: Store) -> None:
    [incident] = await seed(store, new_incident("db/primary"))
    incident_id = stored_id(incident)
    copy_a = replace(await read(store, incident_id), summary="from a")
    copy_b = replace(await read(store, incident_id), summary="from b")

    results = await asyncio.gather(
        store.commit(UnitOfWork([copy_a]), at(1)),
        store.commit(UnitOfWork([copy_b]), at(1)),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["Committed", "Conflict"]
    first_won = isinstance(results[0], Committed)
    winner, committed = (copy_a, results[0]) if first_won else (copy_b, results[1])
    assert committed == Committed({incident_id: 1})
    assert await store.get_incident(incident_id) == replace(winner, version=1)


async def test_concurrent_new_incidents_for_one_key_one_conflicts(store: Store) -> None:
    first, second = await with_ids(store, new_incident("db/primary"), new_incident("db/primary"))
    results = await asyncio.gather(
        store.commit(inserting(first), T0),
        store.commit(inserting(second), T0),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Committed", "Conflict"]
    winner, loser = (first, second) if isinstance(results[0], Committed) else (second, first)
    assert Committed({stored_id(winner): 0}) in results
    assert await store.get_incident(stored_id(loser)) is None
    assert await store.list_incidents(None, None, 10, None) == [winner]


async def test_many_concurrent_commits_all_land(store: Store) -> None:
    incidents = await with_ids(store, *(new_incident(f"key-{n}") for n in range(20)))
    results = await asyncio.gather(
        *(
            store.commit(inserting(i, events=[(stored_id(i), stored_event("opened", T0))]), T0)
            for i in incidents
        )
    )
    assert results == [Committed({stored_id(i): 0}) for i in incidents]
    assert len({stored_id(i) for i in incidents}) == 20
    stored = await store.list_incidents(None, None, 100, None)
    assert sorted(map(stored_id, stored)) == sorted(map(stored_id, incidents))
    for incident in incidents:
        assert await store.get_incident(stored_id(incident)) == incident
        assert await store.timeline(stored_id(incident)) == [stored_event("opened", T0)]


async def test_cancelled_commit_stores_all_or_nothing_and_the_store_goes_on(
    store: Store,
) -> None:
    [existing] = await seed(store, new_incident("db/replica"))
    existing_id = stored_id(existing)
    incident = await reserved(store, "db/primary")
    changed = replace(existing, summary="changed")
    unit = UnitOfWork([incident, changed], new=[stored_id(incident)])

    task = asyncio.create_task(store.commit(unit, at(1)))
    await asyncio.sleep(0)  # let it start, then cancel it mid-flight
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    stored = await store.list_incidents(None, None, 10, None)
    stored_existing = await read(store, existing_id)
    if len(stored) == 2:  # it committed anyway: all of it
        assert stored[0] == incident
        assert stored_existing == replace(changed, version=1)
    else:  # it did not: none of it, and the same unit commits on a retry
        assert await store.get_incident(stored_id(incident)) is None
        assert stored_existing == existing
        assert await store.commit(unit, at(1)) == unit.committed()
        assert await store.get_incident(stored_id(incident)) == incident
    # Either way a decision on what is stored now commits without a spurious conflict.
    again = replace(await read(store, existing_id), summary="changed again")
    committed = await store.commit(UnitOfWork([again]), at(2))
    assert committed == Committed({existing_id: 2})
    assert await store.get_incident(existing_id) == as_committed(again, committed)
