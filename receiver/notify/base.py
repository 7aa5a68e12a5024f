"""The notifier interface and the log-only notifier used when a channel has no settings."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from receiver.domain.delivery import Effect, OutboxItem
from receiver.domain.delivery import Notifier as Notifier
from receiver.domain.failures import DeliveryError
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


class ByVia:
    """A channel whose instructions say how they go (``via``): each handed to that way's
    notifier (the reporter channel: an e-mail, or a Telegram message to who wrote the bot)."""

    def __init__(self, ways: dict[str, Notifier], default: str) -> None:
        self.ways = ways
        self.default = default

    async def deliver(self, item: OutboxItem) -> Sequence[Effect] | None:
        """Deliver through the notifier the instruction names."""
        way = str(item.payload.get("via") or self.default)
        notifier = self.ways.get(way)
        if notifier is None:
            raise DeliveryError(f"no way to send {way!r}", retryable=False)
        return await notifier.deliver(item)


def log_only(notifier: Notifier) -> bool:
    """Whether a notifier only logs (a channel without its settings, every way of it)."""
    if isinstance(notifier, ByVia):
        return all(log_only(way) for way in notifier.ways.values())
    return isinstance(notifier, LogNotifier)
