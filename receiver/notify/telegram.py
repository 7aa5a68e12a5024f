"""Telegram through ``python-telegram-bot``'s Bot API client: pages with Acknowledge,
Mitigated and Resolve buttons, edited in place as the incident moves on; announcements to
the testers' channel; notices to reporters who wrote to the bot.

The client's own retries are off (the outbox retries, honouring Telegram's ``retry_after``).
Telegram has no way to find a message a lost answer left unrecorded, so a send retried after
its first attempt went through unanswered may arrive twice: a page twice beats a page lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import structlog
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from receiver.domain.delivery import Effect, Kind, OutboxItem
from receiver.domain.failures import DeliveryError, Reason

log = structlog.get_logger("receiver.notify.telegram")
TIMEOUT_SECONDS = 15.0
# Edits Telegram refuses that leave nothing to do: the text is already so, or the message
# is gone (deleted by its reader).
NOTHING_TO_EDIT = ("message is not modified", "message to edit not found")


def keyboard(rows: Sequence[Sequence[dict[str, str]]]) -> InlineKeyboardMarkup | None:
    """Inline buttons from an instruction's ``buttons``, or None for none."""
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b["text"], callback_data=b["data"]) for b in row] for row in rows]
    )


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _error(exc: TelegramError) -> DeliveryError:
    """A Telegram failure as the outbox classes it."""
    if isinstance(exc, RetryAfter):
        return DeliveryError(
            f"Telegram: too many requests, retry after {exc.retry_after}",
            retryable=True,
            retry_after=_seconds(exc.retry_after),
            reason=Reason.RATE_LIMITED,
        )
    if isinstance(exc, ChatMigrated):  # a group became a supergroup: the rules must say
        return DeliveryError(
            f"Telegram: the chat moved to {exc.new_chat_id}; put that id in the rules",
            retryable=False,
            reason=Reason.CLIENT_ERROR,
        )
    if isinstance(exc, InvalidToken | Forbidden | BadRequest):
        return DeliveryError(
            f"Telegram refused: {exc.message}"[:500], retryable=False, reason=Reason.CLIENT_ERROR
        )
    return DeliveryError(
        f"Telegram unreachable: {type(exc).__name__}: {exc.message}"[:500],
        retryable=True,
        reason=Reason.SERVER_ERROR,
    )


UPDATES = ("message", "callback_query")  # what the webhook takes


class WebhookRefused(Exception):
    """Telegram did not take the webhook; the message says why."""


class TelegramClient:
    """The calls the receiver makes, each raising DeliveryError on failure."""

    def __init__(self, token: str, api_url: str) -> None:
        request = HTTPXRequest(
            connection_pool_size=16,
            connect_timeout=TIMEOUT_SECONDS,
            read_timeout=TIMEOUT_SECONDS,
            write_timeout=TIMEOUT_SECONDS,
            pool_timeout=TIMEOUT_SECONDS,
        )
        base = f"{api_url.rstrip('/')}/bot"
        self.bot = Bot(token, base_url=base, request=request, get_updates_request=request)

    async def send(
        self, chat_id: str, text: str, buttons: Sequence[Sequence[dict[str, str]]] = ()
    ) -> int:
        """Send a plain-text message; returns its message id."""
        try:
            sent = await self.bot.send_message(
                chat_id=chat_id,
                text=text,
                reply_markup=keyboard(buttons),
                link_preview_options=None,
            )
        except TelegramError as exc:
            raise _error(exc) from exc
        return int(sent.message_id)

    async def edit(
        self, chat_id: str, message_id: int, text: str, buttons: Sequence[Sequence[dict[str, str]]]
    ) -> None:
        """Replace a message's text and buttons; nothing to do is not a failure."""
        try:
            await self.bot.edit_message_text(
                chat_id=chat_id,
                message_id=message_id,
                text=text,
                reply_markup=keyboard(buttons),
            )
        except BadRequest as exc:
            if any(why in exc.message.lower() for why in NOTHING_TO_EDIT):
                return
            raise _error(exc) from exc
        except TelegramError as exc:
            raise _error(exc) from exc

    async def close(self) -> None:
        """Close the HTTP connections (the bot itself was never initialised: no getMe)."""
        await self.bot.request.shutdown()

    async def set_webhook(self, url: str, secret: str) -> dict[str, object]:
        """Have Telegram send the bot's messages and button presses to ``url`` with
        ``secret``; what Telegram then knows of the webhook."""
        try:
            await self.bot.set_webhook(
                url, secret_token=secret, allowed_updates=list(UPDATES), drop_pending_updates=False
            )
            info = await self.bot.get_webhook_info()
        except TelegramError as exc:
            raise WebhookRefused(f"Telegram refused: {exc.message}") from exc
        finally:
            await self.close()
        return {"url": info.url, "pending": info.pending_update_count}


class TelegramNotifier:
    """The telegram channel: pages to people's chats, the pages brought up to date, and
    announcements to the testers' channel."""

    medium = "telegram"  # the channel label of receiver_page_latency_seconds

    def __init__(self, client: TelegramClient) -> None:
        self.client = client

    async def close(self) -> None:
        """Close the client's connections (on shutdown)."""
        await self.client.close()

    async def deliver(self, item: OutboxItem) -> list[Effect]:
        """Carry out one instruction."""
        order = item.payload
        if item.kind == Kind.PAGE:
            chat = order.get("chat_id")
            if not chat:
                raise DeliveryError(
                    f"{order.get('person')} has no telegram_id to page", retryable=False
                )
            message_id = await self.client.send(str(chat), str(order["text"]), order["buttons"])
            if item.incident_id is None:
                return []
            values = (str(chat), str(message_id), str(order.get("purpose") or "page"))
            return [Effect("telegram_message", item.incident_id, values)]
        update = order.get("update")
        if isinstance(update, dict):
            await self._edit_all(item, update)
            return []
        await self.client.send(str(order["chat_id"]), str(order["text"]))
        return []

    async def _edit_all(self, item: OutboxItem, update: dict[str, object]) -> None:
        """Bring every page of the incident up to date; one that cannot be (its reader
        blocked the bot, or it is too old to edit) is logged and the rest still are. Only
        what may go through later is retried, and all of them with it."""
        retry: DeliveryError | None = None
        buttons = update.get("buttons")
        rows = buttons if isinstance(buttons, list) else []
        for chat_id, shown, _ in item.prior.telegram:
            try:
                await self.client.edit(chat_id, int(shown), str(update["text"]), rows)
            except DeliveryError as exc:
                if exc.retryable:
                    retry = retry or exc
                else:
                    log.warning("telegram_edit_refused", incident_id=item.incident_id,
                                message_id=shown, error=str(exc))  # fmt: skip
        if retry is not None:
            raise retry


class TelegramReporterNotice:
    """A notice to a beta tester who wrote to the bot: a message to their chat."""

    medium = "telegram"

    def __init__(self, client: TelegramClient) -> None:
        self.client = client

    async def deliver(self, item: OutboxItem) -> None:
        """Send the notice's text to the reporter's chat."""
        await self.client.send(str(item.payload["chat_id"]), str(item.payload["text"]))
        log.info("reporter_notified", kind=item.kind, incident_id=item.incident_id,
                 reference=item.payload.get("reference"), via="telegram")  # fmt: skip
