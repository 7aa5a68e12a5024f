"""Slack through slack_sdk's async client: incident posts, pages as direct messages with
Acknowledge and Resolve buttons, and messages updated in place as the incident moves on.

slack_sdk's own retries are off: the outbox retries, honouring Slack's Retry-After.

Every post carries message metadata naming its delivery (outbox id and part). A delivery
that may already have had its effect looks for that tag in the conversation before posting,
so a post whose outcome was never recorded is not made twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from receiver.domain import slack_render
from receiver.domain.delivery import Effect, Kind, OutboxItem, page_purpose
from receiver.domain.failures import (
    DeliveryError,
    Reason,
    is_retryable_status,
    parse_retry_after,
    reason_for_exception,
    reason_for_status,
)
from receiver.domain.slack_render import CHANNEL_ID, USER_ID

log = structlog.get_logger("receiver.notify.slack")

# Slack answers these with HTTP 200 and ok=false; trying again can help.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)
DELIVERY_EVENT = "alert_receiver_delivery"
# How far before an outbox row was written an earlier copy is looked for: clock skew with Slack.
LOOKBACK_MARGIN_SECONDS = 120.0
HISTORY_LIMIT = 200
HISTORY_PAGES = 5
LIST_LIMIT = 1000
LIST_PAGES = 10
SlackErrors = (SlackApiError, aiohttp.ClientError, TimeoutError)


def _reason(status: int, code: str) -> Reason:
    """The failure class of an answer: by its HTTP status, or by Slack's error code when the
    status was 200 and ``ok`` false."""
    if code == "ratelimited" or status >= 400:
        return Reason.RATE_LIMITED if code == "ratelimited" else reason_for_status(status)
    return Reason.SERVER_ERROR if code in RETRYABLE_ERRORS else Reason.CLIENT_ERROR


def _error(exc: Exception) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        status = int(exc.response.status_code)
        code = str(exc.response.get("error", "")) if exc.response.data else ""
        header = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
        return DeliveryError(
            f"Slack answered {status}: {code or 'error'}",
            retryable=is_retryable_status(status) or code in RETRYABLE_ERRORS,
            retry_after=parse_retry_after(header, datetime.now().astimezone()),
            reason=_reason(status, code),
        )
    return DeliveryError(
        f"Slack unreachable: {type(exc).__name__}: {exc}"[:500],
        retryable=True,
        reason=reason_for_exception(exc),
    )


def delivery_metadata(tag: str) -> dict[str, Any]:
    """The message metadata that marks a post as made by one delivery."""
    return {"event_type": DELIVERY_EVENT, "event_payload": {"delivery": tag}}


def is_tagged(message: Mapping[str, Any], tag: str) -> bool:
    """Whether a message from conversations.history or .replies carries the delivery tag."""
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != DELIVERY_EVENT:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, Mapping) and payload.get("delivery") == tag


def message(incident_id: int, posted: Posted, purpose: str) -> Effect:
    """A posted message to remember (to update it in place later), as a delivery effect."""
    return Effect("slack_message", incident_id, (posted.channel_id, posted.ts, purpose))


class Posted(NamedTuple):
    """Where a message is; ``earlier`` when an earlier attempt had posted it."""

    channel_id: str
    ts: str
    earlier: bool = False


class SlackClient:
    """The calls the receiver makes, each raising DeliveryError on failure."""

    def __init__(self, token: str, api_url: str) -> None:
        self.web = AsyncWebClient(token=token, base_url=api_url, retry_handlers=[], timeout=15)
        self._ids: dict[str, str] = {}  # channel name or user id -> conversation id

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]], *, tag: str,
                   thread_ts: str | None = None) -> tuple[str, str]:  # fmt: skip
        """Post a message marked with a delivery tag; returns (channel id, ts)."""
        try:
            answer = await self.web.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                metadata=delivery_metadata(tag),
            )
        except SlackErrors as exc:
            raise _error(exc) from exc
        channel_id = str(answer["channel"])
        if channel != channel_id:
            self._ids[channel] = channel_id
        return channel_id, str(answer["ts"])

    async def update(
        self, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        """Replace a message in place."""
        try:
            await self.web.chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks)
        except SlackErrors as exc:
            raise _error(exc) from exc

    async def find(
        self, channel: str, tag: str, oldest: datetime, thread_ts: str | None = None
    ) -> tuple[str, str] | None:
        """(channel id, ts) of a message tagged ``tag`` posted since ``oldest``: top-level in
        ``channel`` (an id, a name or a user's DM), or a reply in the thread ``thread_ts``."""
        channel_id = await self.conversation_id(channel)
        if channel_id is None:
            return None
        since = f"{oldest.timestamp() - LOOKBACK_MARGIN_SECONDS:.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            try:
                if thread_ts is None:
                    answer = await self.web.conversations_history(
                        channel=channel_id,
                        oldest=since,
                        limit=HISTORY_LIMIT,
                        cursor=cursor,
                        include_all_metadata=True,
                    )
                else:
                    answer = await self.web.conversations_replies(
                        channel=channel_id,
                        ts=thread_ts,
                        oldest=since,
                        limit=HISTORY_LIMIT,
                        cursor=cursor,
                        include_all_metadata=True,
                    )
            except SlackErrors as exc:
                raise _error(exc) from exc
            for message in answer.get("messages") or []:
                if is_tagged(message, tag):
                    return channel_id, str(message["ts"])
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                return None
        log.warning("slack_history_not_exhausted", channel=channel_id, delivery=tag)
        return None

    async def conversation_id(self, channel: str) -> str | None:
        """The id of a channel given by id or name, or of the DM with a user; None for a
        name no conversation has."""
        name = channel.lstrip("#")
        if CHANNEL_ID.fullmatch(channel):
            return channel
        if channel in self._ids:
            return self._ids[channel]
        try:
            if USER_ID.fullmatch(channel):
                answer = await self.web.conversations_open(users=channel)
                self._ids[channel] = str(answer["channel"]["id"])
                return self._ids[channel]
            cursor: str | None = None
            for _ in range(LIST_PAGES):
                answer = await self.web.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=LIST_LIMIT,
                    cursor=cursor,
                )
                for found in answer.get("channels") or []:
                    self._ids[f"#{found['name']}"] = self._ids[found["name"]] = str(found["id"])
                cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
                if name in self._ids or cursor is None:
                    break
        except SlackErrors as exc:
            raise _error(exc) from exc
        if name not in self._ids:
            log.warning("slack_channel_not_listed", channel=channel)
        return self._ids.get(name)


class _Base:
    def __init__(self, client: SlackClient) -> None:
        self.client = client

    async def _post_once(
        self,
        item: OutboxItem,
        part: str,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
    ) -> Posted:
        """Post ``part`` of a delivery, unless an earlier attempt of it already did."""
        tag = f"{item.id}:{part}"
        if item.maybe_delivered:
            try:
                found = await self.client.find(channel, tag, item.created_at, thread_ts)
            except DeliveryError as exc:
                if exc.retryable:
                    raise
                # e.g. missing_scope for history: a page posted twice beats a page lost
                log.warning("slack_lookup_refused", delivery=tag, error=str(exc))
                found = None
            if found is not None:
                log.info("slack_post_found", delivery=tag, channel=found[0], ts=found[1])
                return Posted(*found, earlier=True)
        return Posted(*await self.client.post(channel, text, blocks, tag=tag, thread_ts=thread_ts))


def _incident(item: OutboxItem) -> int:
    if item.incident_id is None:
        raise DeliveryError("Slack delivery without an incident", retryable=False)
    return item.incident_id


class SlackNotifier(_Base):
    """Incident traffic in the alerts channel; every message updated as the incident moves."""

    async def deliver(self, item: OutboxItem) -> list[Effect]:
        """Post the event, and bring earlier messages about the incident up to date."""
        incident_id, order = _incident(item), item.payload
        text, blocks = str(order["text"]), list(order["blocks"])
        messages = item.prior.slack
        if item.kind == Kind.OPENED:
            if item.maybe_delivered and any(p == "alerts" for _, _, p in messages):
                return []
            posted = await self._post_once(item, "alerts", str(order["channel"]), text, blocks)
            return [message(incident_id, posted, "alerts")]
        update, pages = order.get("update"), order.get("pages") or {}
        for channel_id, ts, purpose in messages:
            if update == "all" or (update == "alerts" and purpose == "alerts"):
                await self.client.update(channel_id, ts, text, blocks)
            elif purpose in pages:  # a page brought up to date in its own layout
                again = pages[purpose]
                await self.client.update(channel_id, ts, str(again["text"]), list(again["blocks"]))
        reply = order.get("reply")
        if reply:
            opening = next(((c, t) for c, t, p in messages if p == "alerts"), None)
            channel = opening[0] if opening else str(order["channel"])
            thread_ts = opening[1] if opening else None
            section = [slack_render.section(str(reply))]
            await self._post_once(item, "thread", channel, str(reply), section, thread_ts)
        return []


class SlackPager(_Base):
    """A page: a direct message with buttons to the person, and a mention in the team channel."""

    medium = "slack"  # the channel label of receiver_page_latency_seconds

    async def deliver(self, item: OutboxItem) -> list[Effect]:
        """Reach one person."""
        incident_id, page = _incident(item), item.payload
        user = page.get("slack_id")
        if not user:
            raise DeliveryError(f"{page.get('person')} has no slack_id to page", retryable=False)
        text, blocks = str(page["text"]), list(page["blocks"])
        dm = await self._post_once(item, "dm", str(user), text, blocks)
        purpose = page_purpose(int(page.get("step", 0)), str(page.get("person")))
        effects = [message(incident_id, dm, purpose)]  # recorded once, however often found
        mention = page.get("mention")
        if mention:
            line = str(mention["text"])
            await self._post_once(
                item, "mention", str(mention["channel"]), line, [slack_render.section(line)]
            )
        return effects


class SlackPoster(_Base):
    """Plain messages prepared in full when they were decided (announcements for beta
    testers, the weekly digest): the payload names the channel and carries the text."""

    async def deliver(self, item: OutboxItem) -> None:
        """Post the prepared text where the payload says."""
        channel = str(item.payload["channel"])
        # already escaped where it was written; cut here so no escape is split in half
        text = slack_render.fit(str(item.payload["text"]))
        await self._post_once(item, item.kind, channel, text, [slack_render.section(text)])


def slack_notifiers(token: str, api_url: str) -> tuple[SlackNotifier, SlackPager, SlackPoster]:
    """The Slack-backed notifiers over one client: incident traffic, pages, plain posts."""
    client = SlackClient(token, api_url)
    return SlackNotifier(client), SlackPager(client), SlackPoster(client)
