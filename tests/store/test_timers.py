"""The Store interface: timers, Slack messages and the JIRA key."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from receiver.domain.delivery import Outcome
from receiver.domain.escalation import Timer, TimerKind
from receiver.store import Conflict, Store, UnitOfWork
from receiver.store.base import Committed, DeliveryOutcome, Effect
from tests.store.builders import (
    T0,
    at,
    inserting,
    messages,
    new_incident,
    note,
    posted,
    read,
    record,
    reserved,
    seed,
    stored_event,
    stored_id,
)


def timer(step: int, due: datetime, kind: TimerKind = TimerKind.ESCALATION) -> Timer:
    return Timer(kind, step, due, T0)


def plain(timers: list[Timer]) -> list[tuple[int | None, TimerKind, int, datetime, datetime]]:
    """Claimed timers without their ids."""
    return [(t.incident_id, t.kind, t.step, t.due_at, t.trigger) for t in timers]


@pytest.fixture
async def x(store: Store) -> int:
    """The id of a stored incident."""
    [incident] = await seed(store, new_incident("x"))
    return stored_id(incident)


async def test_due_timers_are_claimed_in_due_order_under_a_lease(store: Store) -> None:
    incident = await reserved(store, "x")
    incident_id = stored_id(incident)
    await store.commit(
        inserting(
            incident,
            timers=[
                (incident_id, timer(2, at(300))),
                (incident_id, timer(0, at(60), TimerKind.ACK_SLA)),
                (incident_id, timer(1, at(120))),
            ],
        ),
        T0,
    )
    assert await store.claim_timers(at(59), 10, 30) == []
    first = await store.claim_timers(at(200), 10, 30)
    assert plain(first) == [
        (incident_id, TimerKind.ACK_SLA, 0, at(60), T0),
        (incident_id, TimerKind.ESCALATION, 1, at(120), T0),
    ]
    assert all(t.id is not None for t in first)
    assert await store.claim_timers(at(229), 10, 30) == []  # leased

    # The claimer went away: after the lease the same timers come back, up to the limit.
    again = await store.claim_timers(at(231), 1, 30)
    assert again == first[:1]
    assert await store.claim_timers(at(255), 10, 30) == first[1:]
    everything = await store.claim_timers(at(300), 10, 30)
    assert everything[:2] == first
    assert plain(everything[2:]) == [(incident_id, TimerKind.ESCALATION, 2, at(300), T0)]


async def test_a_timer_is_stored_once_while_pending(store: Store, x: int) -> None:
    await store.commit(UnitOfWork(timers=[(x, timer(1, at(60)))]), T0)
    await store.commit(UnitOfWork(timers=[(x, timer(1, at(60))), (x, timer(1, at(60)))]), at(1))
    [claimed] = await store.claim_timers(at(60), 10, 30)

    # Once cancelled, the same trigger may plan it again.
    await store.commit(UnitOfWork([await read(store, x)], cancel_timers=[x]), at(61))
    assert await store.claim_timers(at(1000), 10, 30) == []
    await store.commit(UnitOfWork(timers=[(x, timer(1, at(60)))]), at(62))
    [replanned] = await store.claim_timers(at(1000), 10, 30)
    assert plain([replanned]) == plain([claimed])
    assert replanned.id != claimed.id


async def test_cancel_applies_before_the_unit_s_new_timers(store: Store, x: int) -> None:
    await store.commit(UnitOfWork(timers=[(x, timer(1, at(60))), (x, timer(2, at(120)))]), T0)
    replan = UnitOfWork([await read(store, x)], cancel_timers=[x], timers=[(x, timer(1, at(90)))])
    await store.commit(replan, at(10))
    assert plain(await store.claim_timers(at(1000), 10, 30)) == [
        (x, TimerKind.ESCALATION, 1, at(90), T0)
    ]


async def test_firing_a_timer_twice_conflicts_and_writes_nothing(store: Store, x: int) -> None:
    await store.commit(UnitOfWork(timers=[(x, timer(1, at(60))), (x, timer(2, at(60)))]), T0)
    one, two = await store.claim_timers(at(60), 10, 30)
    assert one.id is not None and two.id is not None
    fired = stored_event("escalated", at(61), step=1)
    await store.commit(UnitOfWork(fired_timers=[one.id], events=[(x, fired)]), at(61))

    late = stored_event("escalated", at(62), step=1)
    with pytest.raises(Conflict):
        await store.commit(UnitOfWork(fired_timers=[two.id, one.id], events=[(x, late)]), at(62))
    assert await store.timeline(x) == [fired]
    # The timer left pending by the failed unit is still there once its lease passes.
    assert await store.claim_timers(at(95), 10, 30) == [two]


async def test_a_cancelled_timer_cannot_fire(store: Store, x: int) -> None:
    await store.commit(UnitOfWork(timers=[(x, timer(1, at(60)))]), T0)
    [due] = await store.claim_timers(at(60), 10, 30)
    assert due.id is not None
    await store.commit(UnitOfWork([await read(store, x)], cancel_timers=[x]), at(61))
    with pytest.raises(Conflict):
        await store.commit(UnitOfWork(fired_timers=[due.id]), at(62))


async def test_slack_messages_in_recorded_order_once_each(store: Store, x: int) -> None:
    [stored] = await seed(store, new_incident("other"))
    other = stored_id(stored)
    await record(store, posted(x, "C2", "200.1", "alerts"))
    await record(store, posted(other, "C1", "150.0", "alerts"))
    await record(store, posted(x, "C1", "100.1", "page"))
    await record(store, posted(x, "C2", "200.1", "page"))  # the same message again
    assert await messages(store, x) == [("C2", "200.1", "alerts"), ("C1", "100.1", "page")]
    assert await messages(store, other) == [("C1", "150.0", "alerts")]
    assert await messages(store, 987_654_321) == []


async def test_the_jira_key_never_conflicts_with_a_decision(store: Store, x: int) -> None:
    """The key is the notifier's alone: recording it leaves the version, so a decision made
    on a copy read before it commits, and keeps the key."""
    copy = await read(store, x)
    await record(store, Effect("jira_key", x, ("OPS-1",)))
    stored = await read(store, x)
    assert (stored.jira_key, stored.version) == ("OPS-1", 0)
    changed = replace(copy, summary="changed from a copy read before the key")
    assert await store.commit(UnitOfWork([changed]), at(1)) == Committed({x: 1})
    stored = await read(store, x)
    assert (stored.summary, stored.jira_key, stored.version) == (changed.summary, "OPS-1", 1)


async def test_effects_are_recorded_with_the_outcome(store: Store, x: int) -> None:
    """What a delivery did (the issue it made, the message it posted) is written in the
    transaction that records it as sent."""
    await store.commit(UnitOfWork([await read(store, x)], outbox=[(x, note("jira"))]), at(1))
    [item] = await store.claim_outbox(at(2), 10, 60)
    effects = (
        Effect("jira_key", x, ("OPS-7",)),
        Effect("slack_message", x, ("C1", "1.5", "alerts")),
    )
    await store.claim_outbox(
        at(3), 0, 60, [DeliveryOutcome(item.id, Outcome.SENT, effects=effects)]
    )
    stored = await store.get_incident(x)
    assert stored is not None and stored.jira_key == "OPS-7"
    assert await messages(store, x) == [("C1", "1.5", "alerts")]
    [sent] = await store.deliveries("sent", x, 10)
    assert sent.id == item.id
