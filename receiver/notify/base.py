"""The notifier interface and the log-only notifier used when a channel has no settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from receiver.store.base import Effect, OutboxItem


class Notifier(Protocol):
    """Delivers one outbox item or raises DeliveryError."""

    async def deliver(self, item: OutboxItem) -> Sequence[Effect] | None:
        """Send the item to the outside world; return what later deliveries of the incident
        need to know of it (recorded with the outcome, in one transaction)."""


class LogNotifier:
    """Logs what it would have sent: the mode of a channel whose settings are absent."""

    medium = "log"  # pages in log-only mode reach nobody: their latency says so

    def __init__(self, channel: str, render: Callable[[OutboxItem], str] | None = None) -> None:
        self.channel = channel
        self.render = render  # the text its readers would see
        self.log = structlog.get_logger(f"receiver.notify.{channel}")

    async def deliver(self, item: OutboxItem) -> None:
        """Log the delivery instead of sending it, with the text it would show."""
        text = self.render(item) if self.render else None
        self.log.info(
            "would_send",
            channel=self.channel,
            kind=item.kind,
            incident_id=item.incident_id,
            outbox_id=item.id,
            text=text,
            payload=item.payload,
        )
