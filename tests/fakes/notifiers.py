"""Hand-written notifiers that record what they were given and fail on command."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from receiver.store.base import OutboxItem


@dataclass
class RecordingNotifier:
    """Records delivered items; fails with the queued errors first (a DeliveryError as a
    notifier reports a failure, anything else as a notifier with a bug raises it)."""

    failures: deque[Exception] = field(default_factory=deque)
    delivered: list[OutboxItem] = field(default_factory=list)
    attempts: int = 0

    def fail_next(self, *errors: Exception) -> None:
        self.failures.extend(errors)

    async def deliver(self, item: OutboxItem) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.popleft()
        self.delivered.append(item)
