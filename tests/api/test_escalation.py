"""Escalation timers through the service and a real store, with the clock moved by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from receiver.api.payload import WebhookPayload
from receiver.metrics import Metrics
from receiver.service import IncidentService
from receiver.service.rules import RulesHolder
from receiver.store.sqlite import SqliteStore
from tests.helpers import SHIPPED_RULES, FakeClock, alert, metric, webhook

# Thursday 2026-11-26 10:00 in Seoul: inside business hours.
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


class Receiver:
    """A service over a store file; build a second one on the same file to 'restart'."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.store = SqliteStore(str(path))
        self.metrics = Metrics()
        self.clock = clock
        self.service = IncidentService(
            self.store, RulesHolder(SHIPPED_RULES, self.metrics), self.metrics, clock
        )

    async def post(self, *alerts: dict[str, Any]) -> int:
        payload = WebhookPayload.model_validate(webhook(*alerts))
        result = await self.service.ingest(payload.domain_alerts())
        return result.incidents[0]

    async def fire(self) -> None:
        while await self.service.fire_due_timers():
            pass

    def metric(self, name: str, **labels: str) -> float | None:
        return metric(generate_latest(self.metrics.registry).decode(), name, **labels)


@pytest.fixture
async def receiver(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Receiver]:
    clock.now = T0
    r = Receiver(tmp_path / "esc.db", clock)
    await r.store.open()
    yield r
    await r.store.close()


async def paged(r: Receiver) -> list[tuple[str, int]]:
    """Every page queued so far as (person, step), read without disturbing the outbox."""
    rows = [d for d in await r.store.deliveries(None, None, 500) if d.channel == "pager"]
    detail = await r.store.timeline(rows[0].incident_id) if rows and rows[0].incident_id else []
    pages: list[tuple[str, int]] = []
    for event in detail:
        if event.event in ("paged", "escalated", "phase_overdue"):
            pages.extend((person, event.data["step"]) for person in event.data["people"])
    assert len(pages) == len(rows)  # one pager row per person paged
    return pages


async def test_p1_unacknowledged_escalates_step_by_step(
    receiver: Receiver, clock: FakeClock
) -> None:
    await receiver.post(alert())  # KISTokenRefreshFailed: P1, team backend
    await receiver.fire()
    assert await paged(receiver) == [("kim", 0)]
    clock.advance(minutes=14, seconds=59)
    await receiver.fire()
    assert await paged(receiver) == [("kim", 0)]
    clock.advance(seconds=1)
    await receiver.fire()
    # backend's lead is kim, already paged at step 0, so step 1 pages kim again as lead.
    assert await paged(receiver) == [("kim", 0), ("kim", 1)]
    clock.advance(minutes=15)
    await receiver.fire()
    # The ack deadline (30 min) passes: the on-call is reminded and step 2 comes forward.
    assert await paged(receiver) == [("kim", 0), ("kim", 1), ("kim", 2), ("lee", 2)]
    clock.advance(minutes=15)
    await receiver.fire()  # step 2's own time: paged already, not again
    assert len(await paged(receiver)) == 4
    clock.advance(hours=2)
    await receiver.fire()
    # The mitigation's deadline (1 h after the missed ack deadline) brings step 3 forward;
    # its own time (2 h) then pages nobody again.
    assert await paged(receiver) == [
        ("kim", 0), ("kim", 1), ("kim", 2), ("lee", 2), ("kim", 3), ("park", 3),
    ]  # fmt: skip
    for step in "0123":
        assert receiver.metric("receiver_escalations_total", severity="P1", step=step) == 1
    assert receiver.metric("receiver_ack_sla_breaches_total", severity="P1") == 1
    for phase in ("ack", "mitigate"):
        assert receiver.metric("receiver_phase_sla_breaches_total", phase=phase, severity="P1") == 1
    assert receiver.metric("receiver_phase_sla_breaches_total", phase="resolve", severity="P1") == 0


async def test_p0_pages_the_whole_chain_at_once(receiver: Receiver) -> None:
    await receiver.post(alert(alertname="ServiceDown", service="order-api"))
    await receiver.fire()
    people = {person for person, step in await paged(receiver) if step == 0}
    assert people == {"han", "oh", "lee", "park"}  # on-call, team, lead (han), TL, PM


async def test_ack_stops_escalation_and_the_sla_clock(receiver: Receiver, clock: FakeClock) -> None:
    incident = await receiver.post(alert())
    await receiver.fire()
    clock.advance(minutes=10)
    await receiver.service.acknowledge(incident, "kim")
    for _ in range(5):  # to 1 h after the open: steps 1 and 2 and the ack deadline passed
        clock.advance(minutes=10)
        await receiver.fire()
    assert await paged(receiver) == [("kim", 0)]
    assert receiver.metric("receiver_ack_sla_breaches_total", severity="P1") == 0


async def test_restart_between_steps_neither_loses_nor_repeats(
    tmp_path: Path, receiver: Receiver, clock: FakeClock
) -> None:
    await receiver.post(alert())
    await receiver.fire()
    await receiver.store.close()
    clock.advance(minutes=50)  # steps 1 and 2 and the ack deadline fall due while it is down
    again = Receiver(tmp_path / "esc.db", clock)
    await again.store.open()
    try:
        await again.fire()
        await again.fire()
        # step 1, then the ack deadline (reminding the on-call, bringing step 2 forward),
        # then step 2's own time, which finds lee paged already
        assert await paged(again) == [("kim", 0), ("kim", 1), ("kim", 2), ("lee", 2)]
    finally:
        await again.store.close()
        await receiver.store.open()  # the fixture closes it


async def test_p2_at_night_pages_at_the_next_business_morning(
    receiver: Receiver, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)  # Friday 22:00 in Seoul
    warn = alert(alertname="HighResponseTime", service="order-api", severity="warning")
    await receiver.post(warn)
    await receiver.fire()
    clock.now = datetime(2026, 11, 29, 23, 59, tzinfo=UTC)  # Monday 08:59 in Seoul
    await receiver.fire()
    assert [p for p in await paged(receiver)] == []
    clock.now = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Monday 09:00
    await receiver.fire()
    assert await paged(receiver) == [("cho", 0)]  # devops on-call in its second week
    clock.advance(minutes=15)  # the ladder keeps its spacing from the deferred start
    await receiver.fire()
    assert await paged(receiver) == [("cho", 0), ("kang", 1)]


async def test_p3_pages_nobody(receiver: Receiver, clock: FakeClock) -> None:
    await receiver.post(alert(alertname="HighNetworkLatency", service="edge"))
    for _ in range(4):
        clock.advance(days=1)
        await receiver.fire()
    assert [
        d for d in await receiver.store.deliveries(None, None, 50) if d.channel == "pager"
    ] == []
    assert receiver.metric("receiver_ack_sla_breaches_total", severity="P3") == 1


async def test_resolve_stops_everything(receiver: Receiver, clock: FakeClock) -> None:
    incident = await receiver.post(alert())
    await receiver.fire()
    await receiver.service.resolve(incident, "lee")
    clock.advance(hours=23)  # within the postmortem's day
    await receiver.fire()
    assert await paged(receiver) == [("kim", 0)]


async def test_severity_raised_after_ack_pages_under_the_new_policy(
    receiver: Receiver, clock: FakeClock
) -> None:
    warn = alert(alertname="HighResponseTime", service="order-api", severity="warning")
    incident = await receiver.post(warn)  # P2, devops, inside business hours
    await receiver.fire()
    assert await paged(receiver) == [("kang", 0)]
    clock.advance(minutes=5)
    await receiver.service.acknowledge(incident, "kang")
    clock.advance(minutes=5)
    crit = alert(alertname="HighResponseTime", service="order-api", severity="critical", pod="b")
    await receiver.post(crit)  # raised to P1 while acknowledged
    await receiver.fire()
    assert await paged(receiver) == [("kang", 0), ("kang", 0)]
    clock.advance(minutes=50)
    await receiver.fire()  # the ack stands: no further steps, no breach
    assert await paged(receiver) == [("kang", 0), ("kang", 0)]
    assert receiver.metric("receiver_ack_sla_breaches_total", severity="P1") == 0


async def test_step_zero_pages_in_the_commit_that_opens_the_incident(
    receiver: Receiver, clock: FakeClock
) -> None:
    """The first page is written with the alert that causes it: it is in the outbox the
    moment the webhook is answered, with no timer to fire first, and counted as step 0."""
    incident_id = await receiver.post(alert())  # P1, pages at once
    assert await paged(receiver) == [("kim", 0)]  # no fire(): nothing went through timers
    [page] = [d for d in await receiver.store.deliveries("pending", None, 50) if d.kind == "page"]
    assert page.next_attempt_at == clock.now
    assert receiver.metric("receiver_escalations_total", severity="P1", step="0") == 1
    assert await receiver.service.fire_due_timers() == 0  # step 0 is not also a timer
    clock.advance(minutes=15)  # the later steps still are
    await receiver.fire()
    assert [step for _, step in await paged(receiver)] == [0, 1]
    assert receiver.metric("receiver_escalations_total", severity="P1", step="1") == 1
    events = [e.event for e in await receiver.store.timeline(incident_id)]
    assert events[:2] == ["opened", "paged"]


async def test_a_page_held_for_business_hours_is_still_a_timer(
    receiver: Receiver, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)  # 23:00 in Seoul
    await receiver.post(alert(alertname="KISTokenExpiringSoon"))  # P2: business hours
    assert await paged(receiver) == []
    clock.now = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)  # 09:00 in Seoul
    await receiver.fire()
    assert [step for _, step in await paged(receiver)] == [0]
