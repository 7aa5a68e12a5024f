"""The timer loop: fires due escalation steps and ack deadlines from the store."""

from __future__ import annotations

from receiver.service.incidents import IncidentService
from receiver.service.loops import Poller


def timer_loop(
    service: IncidentService, poll_seconds: float = 1.0, lease_seconds: float = 120.0
) -> Poller:
    """Fires due timers; a commit that plans new ones wakes it at once."""

    async def step() -> int:
        return await service.fire_due_timers(lease_seconds)

    return Poller("timers", step, poll_seconds)
