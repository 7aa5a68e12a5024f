"""Escalating by hand and taking an ack back, against the stored escalation timers: the
service over a real store, the clock moved by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from receiver.domain.incidents import Reason
from receiver.domain.model import Status
from tests.api.test_escalation import T0, Receiver, paged
from tests.api.test_escalation import receiver as receiver  # the fixture, re-exported
from tests.helpers import FakeClock, alert, resolved


# HighResponseTime at "warning": P2 for devops, 10:00 in Seoul (business hours), so no
# ack deadline (4 h) falls inside these tests. Its ladder: kang (on call), kang (lead),
# lee (tech lead), park (PM) at 0, 15 m, 45 m, 2 h.
def p2(starts: datetime = T0) -> dict[str, Any]:
    """The P2 alert, firing since ``starts``."""
    return alert(starts=starts, alertname="HighResponseTime", service="order-api",
                 severity="warning")  # fmt: skip


async def at(r: Receiver, clock: FakeClock, minutes: float) -> list[tuple[str, int]]:
    """Move to ``minutes`` after T0, fire what is due, and say who has been paged."""
    clock.now = T0 + timedelta(minutes=minutes)
    await r.fire()
    return await paged(r)


async def test_escalating_brings_the_next_step_forward_and_the_rest_with_it(
    receiver: Receiver, clock: FakeClock
) -> None:
    incident = await receiver.post(p2())
    assert await at(receiver, clock, 5) == [("kang", 0)]
    reason, _ = await receiver.service.actions.escalate(incident, "lee")
    assert reason is Reason.APPLIED
    assert await paged(receiver) == [("kang", 0), ("kang", 1)]  # now, no timer to wait for
    assert receiver.metric("receiver_escalations_total", severity="P2", step="1") == 1
    # step 2 comes 30 minutes later, as 45 m is 30 after 15 m; its own time finds it paged
    assert await at(receiver, clock, 34.9) == [("kang", 0), ("kang", 1)]
    assert await at(receiver, clock, 35) == [("kang", 0), ("kang", 1), ("lee", 2)]
    assert len(await at(receiver, clock, 45)) == 3
    assert await at(receiver, clock, 110) == [("kang", 0), ("kang", 1), ("lee", 2), ("park", 3)]
    assert len(await at(receiver, clock, 180)) == 4  # every step once
    reason, stored = await receiver.service.actions.escalate(incident, "lee")
    assert (reason, stored.status) == (Reason.CONFLICT, Status.TRIGGERED)  # past the last step
    assert receiver.metric("receiver_escalations_total", severity="P2", step="2") == 1


async def test_escalating_an_acknowledged_incident_pages_one_step_only(
    receiver: Receiver, clock: FakeClock
) -> None:
    incident = await receiver.post(p2())
    await receiver.service.acknowledge(incident, "kang")
    assert (await receiver.service.actions.escalate(incident, "kang"))[0] is Reason.APPLIED
    assert await paged(receiver) == [("kang", 0), ("kang", 1)]
    assert len(await at(receiver, clock, 180)) == 2  # someone is on it: no further by itself


async def test_taking_an_ack_back_restarts_the_ladder_from_then(
    receiver: Receiver, clock: FakeClock
) -> None:
    incident = await receiver.post(p2())
    assert await at(receiver, clock, 10) == [("kang", 0)]
    await receiver.service.acknowledge(incident, "kang")
    clock.now = T0 + timedelta(minutes=20)
    reason, stored = await receiver.service.actions.unacknowledge(incident, "lee")
    assert (reason, stored.status, stored.triggered_at) == (
        Reason.APPLIED, Status.TRIGGERED, clock.now,
    )  # fmt: skip
    assert await paged(receiver) == [("kang", 0), ("kang", 0)]  # step 0 again, at once
    assert receiver.metric("receiver_escalations_total", severity="P2", step="0") == 2
    # the ladder counts from the unack: step 1 at 35 m, not at the first trigger's 15 m
    assert len(await at(receiver, clock, 34.9)) == 2
    assert await at(receiver, clock, 35) == [("kang", 0), ("kang", 0), ("kang", 1)]
    assert len(await at(receiver, clock, 64.9)) == 3  # not the old step 2 at 45 m either
    assert (await at(receiver, clock, 65))[-1] == ("lee", 2)
    again, _ = await receiver.service.actions.unacknowledge(incident, "lee")
    assert again is Reason.CONFLICT  # triggered: nothing to take back


async def test_a_second_ack_after_an_unack_is_not_a_second_alert_to_ack(
    receiver: Receiver, clock: FakeClock
) -> None:
    incident = await receiver.post(p2())
    clock.advance(minutes=4)
    await receiver.service.mitigate(incident, "kang")  # acknowledges it too
    clock.advance(minutes=4)
    await receiver.service.actions.unacknowledge(incident, "lee")
    clock.advance(minutes=4)
    await receiver.service.acknowledge(incident, "kang")
    clock.advance(minutes=4)
    await receiver.service.mitigate(incident, "kang")
    labels = {"severity": "P2", "category": "performance"}
    assert receiver.metric("receiver_alert_to_ack_seconds_count", **labels) == 1
    assert receiver.metric("receiver_alert_to_ack_seconds_sum", **labels) == 240
    for phase in ("ack", "mitigate"):
        count = receiver.metric("receiver_phase_duration_seconds_count", phase=phase, **labels)
        assert count == 1, phase
    # a reopen is a new cycle: its ack is measured again
    await receiver.post(resolved(p2(), clock.now))
    clock.advance(minutes=4)
    assert await receiver.post(p2(clock.now)) == incident  # reopened
    clock.advance(minutes=1)
    await receiver.service.acknowledge(incident, "kang")
    assert receiver.metric("receiver_alert_to_ack_seconds_count", **labels) == 2
