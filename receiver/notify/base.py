"""The notifier interface and the log-only notifier used when a channel has no settings."""

from __future__ import annotations

import structlog

from receiver.domain.delivery import Notifier as Notifier
from receiver.domain.delivery import OutboxItem
from receiver.domain.instructions import loggable, preview


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
            text=preview(item.channel, loggable(item.payload)),  # private parts stay out
            payload=loggable(item.payload),
        )
