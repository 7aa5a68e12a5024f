"""UnitOfWork bookkeeping: each incident included, timed and cancelled once; notifications
folded per queue as the store folds them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from receiver.domain.escalation import Timer, TimerKind
from receiver.domain.model import Incident, Status
from receiver.domain.notifications import MAX_EVENTS_PER_PAYLOAD, merge_payloads
from receiver.store.base import NewNotification, UnitOfWork

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def incident(key: str) -> Incident:
    return Incident(
        id=None,
        key=key,
        rule="r",
        severity="P1",
        category="api",
        team="backend",
        status=Status.TRIGGERED,
        summary=key,
        group_labels={},
        opened_at=T0,
        triggered_at=T0,
        first_starts_at=T0,
    )


def timer(step: int) -> Timer:
    return Timer(TimerKind.ESCALATION, step, T0, T0)


def test_touch_includes_each_incident_once_by_identity() -> None:
    a, b, twin = incident("a"), incident("b"), incident("a")  # twin: equal, not the same
    unit = UnitOfWork(incidents=[a])
    for touched in (a, b, a, twin, b):
        unit.touch(touched)
    assert [id(i) for i in unit.incidents] == [id(a), id(b), id(twin)]


def test_timers_are_replaced_per_incident_and_cancels_recorded_once() -> None:
    a, b = incident("a"), incident("b")
    unit = UnitOfWork(timers=[(a, timer(0))])
    unit.add_timers(b, [timer(0), timer(1)])
    unit.drop_timers(a)
    unit.add_timers(a, [timer(2)])
    assert [(o.key, t.step) for o, t in unit.timers] == [("b", 0), ("b", 1), ("a", 2)]
    unit.drop_timers(b)
    unit.drop_timers(b)
    assert [(o.key, t.step) for o, t in unit.timers] == [("a", 2)]
    for _ in range(3):
        unit.cancel(a)
    assert unit.cancel_timers == [a]


def joined(n: int, channel: str = "jira") -> NewNotification:
    payload = {"kind": "incident.alerts_joined", "snapshot": n, "events": [{"n": n}]}
    return NewNotification(channel, "incident.alerts_joined", payload, 60.0)


def test_notify_folds_a_coalescing_kind_per_incident_and_channel() -> None:
    a, b = incident("a"), incident("b")
    unit = UnitOfWork()
    unit.notify(a, joined(1))
    unit.notify(b, joined(2))
    unit.notify(a, joined(3))  # folds into 1: b's row is another queue
    unit.notify(a, joined(4, channel="slack"))
    assert [(o and o.key, n.channel, n.payload["snapshot"]) for o, n in unit.outbox] == [
        ("a", "jira", 3),
        ("b", "jira", 2),
        ("a", "slack", 4),
    ]
    assert unit.outbox[0][1].payload["events"] == [{"n": 1}, {"n": 3}]
    assert unit.outbox[0][1].payload["coalesced"] == 2
    assert unit.outbox[0][1].coalesce_seconds == 60.0


def test_notify_never_folds_across_another_notification_of_the_queue() -> None:
    a = incident("a")
    opened = NewNotification("jira", "incident.opened", {"events": [{"n": 0}]})
    unit = UnitOfWork(outbox=[(a, joined(1))])
    unit.notify(a, opened)
    unit.notify(a, joined(2))
    unit.notify(a, joined(3))
    unit.notify(a, opened)
    unit.notify(a, opened)  # not a coalescing kind: never folded
    unit.notify(a, joined(4))
    unit.outbox.append((a, opened))  # appended directly: still ends the fold
    unit.notify(a, joined(5))
    kinds = [(n.kind, len(n.payload["events"])) for _, n in unit.outbox]
    assert kinds == [
        ("incident.alerts_joined", 1),
        ("incident.opened", 1),
        ("incident.alerts_joined", 2),
        ("incident.opened", 1),
        ("incident.opened", 1),
        ("incident.alerts_joined", 1),
        ("incident.opened", 1),
        ("incident.alerts_joined", 1),
    ]


def folds(payloads: list[dict[str, Any]], split: int) -> dict[str, Any]:
    """Fold the first ``split`` payloads and the rest separately, then the two results."""

    def chain(part: list[dict[str, Any]]) -> dict[str, Any]:
        out = part[0]
        for p in part[1:]:
            out = merge_payloads(out, p)
        return out

    return merge_payloads(chain(payloads[:split]), chain(payloads[split:]))


@pytest.mark.parametrize("count", [2, 5, MAX_EVENTS_PER_PAYLOAD, MAX_EVENTS_PER_PAYLOAD + 7, 60])
def test_merge_payloads_gives_the_same_fold_in_any_grouping(count: int) -> None:
    payloads: list[dict[str, Any]] = [
        {"snapshot": n, "events": [{"n": n}, {"n": -n}]} for n in range(count)
    ]
    results = [folds(payloads, split) for split in range(1, count)]
    assert all(r == results[0] for r in results)
    kept = min(2 * count, MAX_EVENTS_PER_PAYLOAD)
    assert results[0]["events"] == [e for p in payloads for e in p["events"]][-kept:]
    assert results[0]["events_dropped"] == 2 * count - kept
    assert results[0]["coalesced"] == count
    assert results[0]["snapshot"] == count - 1
