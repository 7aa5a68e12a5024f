"""UnitOfWork bookkeeping: each incident included, timed and cancelled once."""

from __future__ import annotations

from datetime import UTC, datetime

from receiver.domain.escalation import Timer, TimerKind
from receiver.domain.model import Incident, Status
from receiver.store.base import UnitOfWork

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
