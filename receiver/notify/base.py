"""The notifier interface and the log-only notifier used when a channel has no settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog

from receiver.domain.delivery import Effect, OutboxItem
from receiver.domain.instructions import preview


class Notifier(Protocol):
    """Carries out one outbox instruction or raises DeliveryError."""

    async def deliver(self, item: OutboxItem) -> Sequence[Effect] | None:
        """Send the item to the outside world; return what later deliveries of the incident
        need to know of it (recorded with the outcome, in one transaction)."""


class LogNotifier:
    """Logs what it would have sent: the mode of a channel whose settings are absent."""

    medium = "log"  # pages in log-only mode reach nobody: their latency says so

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.log = structlog.get_logger(f"receiver.notify.{channel}")

    async def deliver(self, item: OutboxItem) -> None:
        """Log the delivery instead of sending it, with the text its readers would see."""
        self.log.info(
            "would_send",
            channel=self.channel,
            kind=item.kind,
            incident_id=item.incident_id,
            outbox_id=item.id,
            text=preview(item.channel, item.payload),
            payload=item.payload,
        )
