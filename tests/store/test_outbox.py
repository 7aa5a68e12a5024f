"""The Store interface: the outbox (claims, leases, outcomes, stats) and coalescing."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from receiver.domain.delivery import Outcome
from receiver.domain.notifications import COALESCED_KINDS, merge_payloads
from receiver.store import Delivery, Store, UnitOfWork
from receiver.store.base import DeliveryOutcome, OutboxItem
from tests.store.builders import (
    JOINED,
    T0,
    at,
    enqueue,
    inserting,
    joined,
    new_incident,
    note,
    read,
    reserved,
    seed,
    stored_id,
    view,
    with_ids,
)

OPENED = "incident.opened"
ACKED = "incident.acknowledged"
RESOLVED = "incident.resolved"


# x, y and z: the ids of three stored incidents of those keys.


@pytest.fixture
async def x(store: Store) -> int:
    [incident] = await seed(store, new_incident("x"))
    return stored_id(incident)


@pytest.fixture
async def y(store: Store) -> int:
    [incident] = await seed(store, new_incident("y"))
    return stored_id(incident)


@pytest.fixture
async def z(store: Store) -> int:
    [incident] = await seed(store, new_incident("z"))
    return stored_id(incident)


def sent(item: OutboxItem) -> DeliveryOutcome:
    return DeliveryOutcome(item.id, Outcome.SENT)


async def pending(store: Store, incident_id: int) -> list[Delivery]:
    """An incident's pending deliveries, oldest first."""
    rows = await store.deliveries("pending", incident_id, 100)
    return sorted(rows, key=lambda d: d.id)


def test_alerts_joined_is_the_coalesced_kind() -> None:
    assert JOINED in COALESCED_KINDS
    assert RESOLVED not in COALESCED_KINDS


# --- claims ---------------------------------------------------------------------------------


async def test_claim_returns_only_due_rows(store: Store, x: int, y: int) -> None:
    assert await store.claim_outbox(T0, 10, 30) == []
    await enqueue(store, T0, (x, note(OPENED, {"n": 1})), (y, joined("y", 1, "fp-a")))

    [item] = await store.claim_outbox(T0, 10, 300)
    assert item == OutboxItem(item.id, x, "jira", OPENED, {"n": 1}, 0, T0)
    assert await store.claim_outbox(at(59), 10, 300) == []
    [later] = await store.claim_outbox(at(60), 10, 300)
    assert later == OutboxItem(later.id, y, "jira", JOINED, joined("y", 1, "fp-a").payload, 0, T0)
    assert later.id > item.id


async def test_claim_takes_oldest_rows_first_up_to_the_limit(
    store: Store, x: int, y: int, z: int
) -> None:
    await enqueue(store, T0, (z, note(OPENED)), (x, note(OPENED)), (y, note(OPENED)))
    first = await store.claim_outbox(T0, 2, 30)
    assert view(first) == [(z, "jira", OPENED, 0, T0), (x, "jira", OPENED, 0, T0)]
    rest = await store.claim_outbox(T0, 2, 30)
    assert view(rest) == [(y, "jira", OPENED, 0, T0)]
    assert await store.claim_outbox(T0, 2, 30) == []


async def test_one_row_per_channel_and_incident_at_a_time(store: Store, x: int, y: int) -> None:
    await enqueue(
        store,
        T0,
        (x, note(OPENED, {"n": 1})),
        (x, note(ACKED, {"n": 2})),
        (x, note(OPENED, {"n": 3}, channel="slack")),
        (y, note(OPENED, {"n": 4})),
        (x, note(RESOLVED, {"n": 5})),
    )
    claimed = await store.claim_outbox(T0, 10, 30)
    assert [(i.incident_id, i.channel, i.payload) for i in claimed] == [
        (x, "jira", {"n": 1}),
        (x, "slack", {"n": 3}),
        (y, "jira", {"n": 4}),
    ]
    # Later rows of x on jira wait for the first to finish, whatever the time.
    assert await store.claim_outbox(at(1), 10, 30) == []

    x1, x_slack, y1 = claimed
    [x2] = await store.claim_outbox(at(2), 10, 30, finished=[sent(x1)])
    assert (x2.incident_id, x2.kind, x2.payload) == (x, ACKED, {"n": 2})
    assert await store.claim_outbox(at(3), 10, 30, finished=[sent(x_slack), sent(y1)]) == []
    [x3] = await store.claim_outbox(at(4), 10, 30, finished=[sent(x2)])
    assert (x3.incident_id, x3.kind, x3.payload) == (x, RESOLVED, {"n": 5})
    assert await store.claim_outbox(at(5), 10, 30, finished=[sent(x3)]) == []
    assert await store.deliveries("pending", None, 10) == []
    assert [d.status for d in await store.deliveries(None, None, 10)] == ["sent"] * 5


async def test_concurrent_claims_never_share_a_row(store: Store) -> None:
    incidents = await with_ids(store, *(new_incident(f"key-{n}") for n in range(12)))
    await store.commit(
        inserting(*incidents, outbox=[(stored_id(i), note(OPENED)) for i in incidents]), T0
    )
    batches = await asyncio.gather(*(store.claim_outbox(T0, 5, 30) for _ in range(4)))
    claimed = [item.id for batch in batches for item in batch]
    assert len(claimed) == len(set(claimed)) == 12
    assert all(len(batch) <= 5 for batch in batches)


async def test_rows_without_incident_are_claimable(store: Store) -> None:
    await enqueue(store, T0, (None, note("digest", {"n": 1}, channel="slack")))
    [item] = await store.claim_outbox(T0, 10, 30)
    assert item == OutboxItem(item.id, None, "slack", "digest", {"n": 1}, 0, T0)


async def test_lease_hides_claimed_rows_until_it_passes(store: Store, x: int) -> None:
    await enqueue(store, T0, (x, note(OPENED)))
    [item] = await store.claim_outbox(T0, 10, 30)
    assert await store.claim_outbox(at(10), 10, 30) == []
    assert await store.claim_outbox(at(29), 10, 30) == []

    # The claimer crashed: once the lease has passed the row is claimable again, untouched.
    [again] = await store.claim_outbox(at(31), 10, 30)
    assert again == replace(item, claims=2)  # handed out again: it may have gone out
    assert again.maybe_delivered and not item.maybe_delivered
    assert await store.claim_outbox(at(40), 10, 30) == []
    assert await store.claim_outbox(at(60), 10, 30) == []
    [third] = await store.claim_outbox(at(62), 10, 30)
    assert third == replace(item, claims=3)


async def test_outcomes_are_recorded_with_the_next_claim(
    store: Store, x: int, y: int, z: int
) -> None:
    await enqueue(
        store,
        T0,
        (x, note(OPENED, {"n": 1})),
        (y, note(OPENED, {"n": 2})),
        (z, note(OPENED, {"n": 3})),
        (x, note(ACKED, {"n": 4})),
        (y, note(ACKED, {"n": 5})),
    )
    a, b, c = await store.claim_outbox(T0, 10, 30)
    outcomes = [
        DeliveryOutcome(a.id, Outcome.SENT),
        DeliveryOutcome(b.id, Outcome.RETRY, "HTTP 503", at(60)),
        DeliveryOutcome(c.id, Outcome.DEAD, "HTTP 400: bad request", None),
    ]

    [next_of_x] = await store.claim_outbox(at(5), 10, 300, finished=outcomes)
    assert (next_of_x.incident_id, next_of_x.payload) == (x, {"n": 4})

    assert await store.deliveries("dead", None, 10) == [
        Delivery(c.id, z, "jira", OPENED, "dead", 1, T0, T0, "HTTP 400: bad request", at(5))
    ]
    assert await store.deliveries("dead", y, 10) == []
    [sent_row] = await store.deliveries("sent", None, 10)
    assert (sent_row.id, sent_row.status, sent_row.attempts) == (a.id, "sent", 1)
    assert (sent_row.done_at, sent_row.page) == (at(5), None)  # recorded with the claim at 5
    retry_row, y_acked = await pending(store, y)
    assert retry_row == Delivery(b.id, y, "jira", OPENED, "pending", 1, T0, at(60), "HTTP 503")
    assert y_acked == Delivery(y_acked.id, y, "jira", ACKED, "pending", 0, T0, T0, None)

    # The retried row comes back at its time, with the attempt counted; y's next row
    # keeps waiting behind it.
    assert await store.claim_outbox(at(59), 10, 30) == []
    [retried] = await store.claim_outbox(at(60), 10, 30)
    assert retried == OutboxItem(b.id, y, "jira", OPENED, {"n": 2}, 1, T0, claims=2)

    [y_next] = await store.claim_outbox(at(61), 10, 30, finished=[sent(retried)])
    assert (y_next.incident_id, y_next.payload) == (y, {"n": 5})
    # Sent and dead rows never come back.
    last = [sent(next_of_x), sent(y_next)]
    assert await store.claim_outbox(at(5000), 10, 30, finished=last) == []
    assert await store.deliveries("pending", None, 10) == []
    statuses = {d.id: (d.status, d.attempts) for d in await store.deliveries(None, None, 10)}
    assert statuses == {
        a.id: ("sent", 1),
        b.id: ("sent", 2),
        c.id: ("dead", 1),
        next_of_x.id: ("sent", 1),
        y_next.id: ("sent", 1),
    }


async def test_released_claim_is_claimable_at_once_and_counted(
    store: Store, x: int, y: int
) -> None:
    await enqueue(store, T0, (x, note(OPENED)), (y, note(OPENED)))
    first, second = await store.claim_outbox(T0, 10, 30)
    released = [DeliveryOutcome(first.id, Outcome.RELEASE), sent(second)]
    assert await store.claim_outbox(at(1), 0, 30, finished=released) == []

    [again] = await store.claim_outbox(at(2), 10, 30)
    assert again == replace(first, claims=2)  # not attempted, but it may have gone out
    assert again.maybe_delivered
    # Releasing a row that was finished meanwhile changes nothing.
    late = [sent(again), DeliveryOutcome(second.id, Outcome.RELEASE)]
    assert await store.claim_outbox(at(3), 10, 30, finished=late) == []
    assert {d.status for d in await store.deliveries(None, None, 10)} == {"sent"}


async def test_claim_with_limit_zero_only_records_outcomes(store: Store, x: int, y: int) -> None:
    await enqueue(store, T0, (x, note(OPENED)))
    [item] = await store.claim_outbox(T0, 10, 30)
    await enqueue(store, at(1), (y, note(OPENED)))

    assert await store.claim_outbox(at(2), 0, 30, finished=[sent(item)]) == []
    assert [d.status for d in await store.deliveries(None, x, 10)] == ["sent"]
    assert view(await store.claim_outbox(at(2), 10, 30)) == [(y, "jira", OPENED, 0, at(1))]


async def test_deliveries_newest_first_with_filters_and_limit(store: Store, x: int, y: int) -> None:
    await enqueue(store, T0, (x, note(OPENED)), (y, note(OPENED)))
    await enqueue(store, at(1), (x, note(ACKED)))
    everything = await store.deliveries(None, None, 10)
    assert [(d.incident_id, d.kind, d.created_at) for d in everything] == [
        (x, ACKED, at(1)),
        (y, OPENED, T0),
        (x, OPENED, T0),
    ]
    assert [d.id for d in everything] == sorted((d.id for d in everything), reverse=True)
    assert await store.deliveries(None, None, 1) == everything[:1]
    assert await store.deliveries(None, x, 10) == [everything[0], everything[2]]
    assert await store.deliveries("pending", y, 10) == [everything[1]]
    assert await store.deliveries("sent", None, 10) == []


async def test_outbox_stats_counts_pending_and_ages_the_oldest(
    store: Store, x: int, y: int
) -> None:
    assert await store.outbox_stats(T0) == (0, 0.0)
    await enqueue(store, T0, (x, note(OPENED)))
    await enqueue(store, at(10), (y, note(OPENED)))
    assert await store.outbox_stats(at(25)) == (2, 25.0)

    first, second = await store.claim_outbox(at(25), 10, 30)
    assert await store.outbox_stats(at(25)) == (2, 25.0)  # claimed is still pending
    assert await store.claim_outbox(at(30), 0, 30, finished=[sent(first)]) == []
    assert await store.outbox_stats(at(30)) == (1, 20.0)
    dead = DeliveryOutcome(second.id, Outcome.DEAD, "gone")
    assert await store.claim_outbox(at(31), 0, 30, finished=[dead]) == []
    assert await store.outbox_stats(at(40)) == (0, 0.0)


# --- coalescing -----------------------------------------------------------------------------


async def test_coalesced_notifications_fold_into_one_waiting_row(store: Store, x: int) -> None:
    first, second, third = joined("x", 1, "fp-a"), joined("x", 2, "fp-b"), joined("x", 3, "fp-c")
    await store.commit(UnitOfWork([await read(store, x)], outbox=[(x, first)]), T0)
    await store.commit(UnitOfWork([await read(store, x)], outbox=[(x, second)]), at(10))

    [row] = await store.deliveries(None, x, 10)
    assert (row.kind, row.status, row.attempts, row.created_at) == (JOINED, "pending", 0, T0)
    assert row.next_attempt_at == at(60)
    assert await store.outbox_stats(at(10)) == (1, 10.0)
    assert await store.claim_outbox(at(59), 10, 30) == []

    [item] = await store.claim_outbox(at(60), 10, 30)
    assert item.id == row.id
    assert item.payload == merge_payloads(first.payload, second.payload)
    assert item.payload["coalesced"] == 2
    assert item.payload["events"] == [*first.payload["events"], *second.payload["events"]]
    assert item.payload["incident"] == {"key": "x", "firing_alerts": 2}
    assert third.payload != item.payload


async def test_three_coalesced_notifications_in_one_unit(store: Store) -> None:
    incident = await reserved(store, "x")
    incident_id = stored_id(incident)
    notes = [joined("x", 1, "fp-a"), joined("x", 2, "fp-b"), joined("x", 3, "fp-c")]
    unit = inserting(incident)
    unit.outbox.extend((incident_id, n) for n in notes)  # as they are: the store folds them
    await store.commit(unit, T0)
    assert len(await store.deliveries(None, incident_id, 10)) == 1
    assert await store.claim_outbox(at(59), 10, 30) == []
    [item] = await store.claim_outbox(at(60), 10, 30)
    expected = merge_payloads(merge_payloads(notes[0].payload, notes[1].payload), notes[2].payload)
    assert item.payload == expected
    assert item.payload["coalesced"] == 3
    assert [e["fingerprint"] for e in item.payload["events"]] == ["fp-a", "fp-b", "fp-c"]


async def test_folding_in_the_unit_stores_what_folding_row_by_row_stores(
    store: Store, x: int, y: int
) -> None:
    """UnitOfWork.notify folds before the store does: the stored payload is the same."""
    notes = [joined("x", n, f"fp-{n}") for n in range(1, 31)]  # past the event cap
    for n in notes[:5]:
        await store.commit(UnitOfWork([await read(store, x)], outbox=[(x, n)]), T0)
    unit = UnitOfWork([await read(store, y)])
    for n in notes[:5]:
        unit.notify(y, n)
    await store.commit(unit, T0)
    for start in (5, 17):  # two more units of several notes each, onto the waiting rows
        unit_x = UnitOfWork([await read(store, x)])
        unit_y = UnitOfWork([await read(store, y)])
        for n in notes[start : start + 12]:
            unit_x.outbox.append((x, n))  # as they are: the store folds them
            unit_y.notify(y, n)
        assert len(unit_y.outbox) == 1
        await store.commit(unit_x, at(1))
        await store.commit(unit_y, at(1))

    rows = await store.claim_outbox(at(60), 10, 30)
    assert [r.incident_id for r in rows] == [x, y]
    folded_by_rows, folded_in_units = rows[0].payload, rows[1].payload
    assert folded_in_units == folded_by_rows
    assert folded_in_units["coalesced"] == 29
    assert len(folded_in_units["events"]) + folded_in_units["events_dropped"] == 29


async def test_coalescing_is_per_incident_and_channel(store: Store, x: int, y: int) -> None:
    on_slack = note(JOINED, {"n": "slack"}, channel="slack", coalesce=60)
    await enqueue(store, T0, (x, joined("x", 1, "fp-a")), (x, on_slack), (y, joined("y", 1, "b")))
    await enqueue(store, at(5), (x, joined("x", 2, "fp-c")))

    claimed = await store.claim_outbox(at(60), 10, 30)
    assert [(i.incident_id, i.channel) for i in claimed] == [
        (x, "jira"),
        (x, "slack"),
        (y, "jira"),
    ]
    x_jira, x_slack, y_jira = claimed
    assert x_jira.payload == merge_payloads(
        joined("x", 1, "fp-a").payload, joined("x", 2, "fp-c").payload
    )
    assert x_slack.payload == {"n": "slack"}
    assert y_jira.payload == joined("y", 1, "b").payload


async def test_other_notification_releases_the_waiting_row_in_order(store: Store, x: int) -> None:
    waiting = joined("x", 1, "fp-a")
    await enqueue(store, T0, (x, waiting))
    await enqueue(store, at(5), (x, note(RESOLVED, {"kind": RESOLVED})))

    rows = await pending(store, x)
    assert [(d.kind, d.next_attempt_at) for d in rows] == [(JOINED, at(5)), (RESOLVED, at(5))]
    [first] = await store.claim_outbox(at(5), 10, 30)
    assert (first.kind, first.payload) == (JOINED, waiting.payload)
    assert await store.claim_outbox(at(6), 10, 30) == []
    [second] = await store.claim_outbox(at(6), 10, 30, finished=[sent(first)])
    assert (second.kind, second.payload) == (RESOLVED, {"kind": RESOLVED})


async def test_other_notification_in_the_same_unit_releases_the_waiting_row(
    store: Store, x: int
) -> None:
    waiting = joined("x", 1, "fp-a")
    await enqueue(store, T0, (x, waiting), (x, note(RESOLVED)))
    [first] = await store.claim_outbox(T0, 10, 30)
    assert first.kind == JOINED
    [second] = await store.claim_outbox(at(1), 10, 30, finished=[sent(first)])
    assert second.kind == RESOLVED


async def test_folding_into_the_waiting_row_then_releasing_it_in_one_unit(
    store: Store, x: int
) -> None:
    first, second = joined("x", 1, "fp-a"), joined("x", 2, "fp-b")
    await enqueue(store, T0, (x, first))
    await enqueue(store, at(5), (x, second), (x, note(RESOLVED)), (x, joined("x", 3, "fp-c")))

    rows = await pending(store, x)
    assert [(d.kind, d.next_attempt_at) for d in rows] == [
        (JOINED, at(5)),
        (RESOLVED, at(5)),
        (JOINED, at(65)),
    ]
    [folded] = await store.claim_outbox(at(5), 10, 30)
    assert folded.payload == merge_payloads(first.payload, second.payload)
    [resolved] = await store.claim_outbox(at(6), 10, 30, finished=[sent(folded)])
    assert resolved.kind == RESOLVED
    assert await store.claim_outbox(at(7), 10, 30, finished=[sent(resolved)]) == []
    [late] = await store.claim_outbox(at(65), 10, 30)
    assert late.payload == joined("x", 3, "fp-c").payload


async def test_other_channel_does_not_release_the_waiting_row(store: Store, x: int) -> None:
    await enqueue(store, T0, (x, joined("x", 1, "fp-a")))
    await enqueue(store, at(5), (x, note(RESOLVED, channel="slack")))
    [item] = await store.claim_outbox(at(5), 10, 30)
    assert (item.channel, item.kind) == ("slack", RESOLVED)
    assert await store.claim_outbox(at(59), 10, 30, finished=[sent(item)]) == []
    [later] = await store.claim_outbox(at(60), 10, 30)
    assert (later.channel, later.kind) == ("jira", JOINED)


async def test_coalesced_after_the_release_starts_a_new_row(store: Store, x: int) -> None:
    first, late = joined("x", 1, "fp-a"), joined("x", 2, "fp-b")
    await enqueue(store, T0, (x, first), (x, note(RESOLVED)))
    await enqueue(store, at(1), (x, late))

    rows = await pending(store, x)
    assert [d.kind for d in rows] == [JOINED, RESOLVED, JOINED]
    a = await store.claim_outbox(at(1), 10, 30)
    assert [i.payload for i in a] == [first.payload]
    b = await store.claim_outbox(at(2), 10, 30, finished=[sent(a[0])])
    assert [i.kind for i in b] == [RESOLVED]
    assert await store.claim_outbox(at(3), 10, 30, finished=[sent(b[0])]) == []
    [c] = await store.claim_outbox(at(61), 10, 30)
    assert c.payload == late.payload


async def test_coalesced_after_the_claim_creates_a_new_row(store: Store, x: int) -> None:
    first, late = joined("x", 1, "fp-a"), joined("x", 2, "fp-b")
    await enqueue(store, T0, (x, first))
    [claimed] = await store.claim_outbox(at(60), 10, 30)
    assert claimed.payload == first.payload

    await enqueue(store, at(61), (x, late))
    rows = await pending(store, x)
    assert [(d.id, d.kind, d.created_at) for d in rows] == [
        (claimed.id, JOINED, T0),
        (rows[1].id, JOINED, at(61)),
    ]
    assert rows[1].id != claimed.id
    assert rows[1].next_attempt_at == at(121)

    assert await store.claim_outbox(at(62), 10, 30, finished=[sent(claimed)]) == []
    assert await store.claim_outbox(at(120), 10, 30) == []
    [new] = await store.claim_outbox(at(121), 10, 30)
    assert new.id == rows[1].id
    assert new.payload == late.payload
    assert "coalesced" not in new.payload


async def test_coalesced_after_a_retry_creates_a_new_row(store: Store, x: int) -> None:
    first, late = joined("x", 1, "fp-a"), joined("x", 2, "fp-b")
    await enqueue(store, T0, (x, first))
    [claimed] = await store.claim_outbox(at(60), 10, 30)
    retry = DeliveryOutcome(claimed.id, Outcome.RETRY, "timeout", at(65))
    assert await store.claim_outbox(at(61), 0, 30, finished=[retry]) == []

    await enqueue(store, at(62), (x, late))
    [again] = await store.claim_outbox(at(65), 10, 30)
    assert (again.id, again.attempts, again.payload) == (claimed.id, 1, first.payload)
    assert await store.claim_outbox(at(66), 10, 30, finished=[sent(again)]) == []
    [new] = await store.claim_outbox(at(122), 10, 30)
    assert new.payload == late.payload


async def test_released_row_takes_no_more_folds(store: Store, x: int) -> None:
    """A released row may already have been delivered: later joins start a row of their own."""
    first, late = joined("x", 1, "fp-a"), joined("x", 2, "fp-b")
    await enqueue(store, T0, (x, first))
    [claimed] = await store.claim_outbox(at(60), 10, 30)
    assert (
        await store.claim_outbox(
            at(61), 0, 30, finished=[DeliveryOutcome(claimed.id, Outcome.RELEASE)]
        )
        == []
    )
    await enqueue(store, at(62), (x, late))
    rows = await pending(store, x)
    assert rows[0].id == claimed.id and len(rows) == 2
    [again] = await store.claim_outbox(at(62), 10, 30)
    assert again.payload == first.payload and again.maybe_delivered
