"""UnitOfWork bookkeeping: incidents by id as last put, timers and cancels per incident,
notifications folded per queue by the one fold rule the stores apply too."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from receiver.domain.escalation import Timer, TimerKind
from receiver.domain.model import Event, Incident, Status
from receiver.domain.notifications import MAX_EVENTS_PER_PAYLOAD, merge_payloads
from receiver.store.unit import NewNotification, UnitOfWork, fold

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def incident(key: str, incident_id: int = 1, version: int = 0) -> Incident:
    return Incident(
        id=incident_id,
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
        version=version,
    )


def timer(step: int) -> Timer:
    return Timer(TimerKind.ESCALATION, step, T0, T0)


def test_each_incident_is_stored_as_last_put_by_id() -> None:
    a, b = incident("a", 1, version=3), incident("b", 2)
    later = replace(a, status=Status.ACKNOWLEDGED)
    unit = UnitOfWork([a])
    unit.open(b)
    unit.put(later)
    assert unit.incidents == {1: later, 2: b}
    assert unit.new == {2}
    assert unit.committed().versions == {1: 4, 2: 0}
    assert a.status is Status.TRIGGERED  # what it was given is never changed


def test_an_incident_without_id_is_refused() -> None:
    with pytest.raises(ValueError, match="reserve"):
        UnitOfWork([replace(incident("a"), id=None)])


def test_timers_are_replaced_per_incident_and_cancels_recorded_once() -> None:
    unit = UnitOfWork(timers=[(1, timer(0))])
    unit.add_timers(2, [timer(0), timer(1)])
    unit.drop_timers(1)
    unit.add_timers(1, [timer(2)])
    assert [(o, t.step) for o, t in unit.timers] == [(2, 0), (2, 1), (1, 2)]
    unit.drop_timers(2)
    unit.drop_timers(2)
    assert [(o, t.step) for o, t in unit.timers] == [(1, 2)]
    for _ in range(3):
        unit.cancel(1)
    assert list(unit.cancel_timers) == [1]


def test_renumbering_gives_provisional_ids_their_real_ones_in_every_row() -> None:
    a, b = incident("a", -1), incident("b", 5, version=2)
    opened = Event("opened", T0)
    unit = UnitOfWork([b], events=[(-1, opened), (5, opened)], timers=[(-1, timer(0))])
    unit.open(a)
    unit.cancel(5)
    unit.renumbered({-1: 40})
    assert unit.incidents == {5: b, 40: replace(a, id=40)}
    assert unit.new == {40}
    assert unit.events == [(40, opened), (5, opened)]
    assert [o for o, _ in unit.timers] == [40]
    assert list(unit.cancel_timers) == [5]


def joined(n: int, channel: str = "jira") -> NewNotification:
    payload = {"kind": "incident.alerts_joined", "snapshot": n, "events": [{"n": n}]}
    return NewNotification(channel, "incident.alerts_joined", payload, 60.0)


def test_notify_folds_a_coalescing_kind_per_incident_and_channel() -> None:
    unit = UnitOfWork()
    unit.notify(1, joined(1))
    unit.notify(2, joined(2))
    unit.notify(1, joined(3))  # folds into 1: 2's row is another queue
    unit.notify(1, joined(4, channel="slack"))
    assert [(o, n.channel, n.payload["snapshot"]) for o, n in unit.outbox] == [
        (1, "jira", 3),
        (2, "jira", 2),
        (1, "slack", 4),
    ]
    assert unit.outbox[0][1].payload["events"] == [{"n": 1}, {"n": 3}]
    assert unit.outbox[0][1].payload["coalesced"] == 2
    assert unit.outbox[0][1].coalesce_seconds == 60.0


def test_notify_never_folds_across_another_notification_of_the_queue() -> None:
    opened = NewNotification("jira", "incident.opened", {"events": [{"n": 0}]})
    unit = UnitOfWork(outbox=[(1, joined(1))])
    unit.notify(1, opened)
    unit.notify(1, joined(2))
    unit.notify(1, joined(3))
    unit.notify(1, opened)
    unit.notify(1, opened)  # not a coalescing kind: never folded
    unit.notify(1, joined(4))
    unit.notify(None, joined(5))  # rows without an incident are a queue of their own
    unit.notify(None, joined(6))
    kinds = [(o, n.kind, len(n.payload["events"])) for o, n in unit.outbox]
    assert kinds == [
        (1, "incident.alerts_joined", 1),
        (1, "incident.opened", 1),
        (1, "incident.alerts_joined", 2),
        (1, "incident.opened", 1),
        (1, "incident.opened", 1),
        (1, "incident.alerts_joined", 1),
        (None, "incident.alerts_joined", 2),
    ]


@pytest.mark.parametrize(
    ("waiting_kind", "note", "expected"),
    [
        ("incident.alerts_joined", joined(2), True),
        ("incident.opened", joined(2), False),  # another kind
        ("incident.alerts_joined", replace(joined(2), coalesce_seconds=0), False),
    ],
)
def test_fold_is_one_rule(waiting_kind: str, note: NewNotification, expected: bool) -> None:
    waiting = joined(1).payload
    merged = fold(waiting_kind, waiting, note)
    assert (merged is not None) is expected
    if merged is not None:
        assert merged == merge_payloads(waiting, note.payload)


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
