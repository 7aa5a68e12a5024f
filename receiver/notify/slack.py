"""Slack through slack_sdk's async client: incident posts, pages as direct messages with
Acknowledge and Resolve buttons, and messages updated in place as the incident moves on.

slack_sdk's own retries are off: the outbox retries, honouring Slack's Retry-After.

Every post carries message metadata naming its delivery (outbox id and part). A delivery
that may already have had its effect looks for that tag in the conversation before posting,
so a post whose outcome was never recorded is not made twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from receiver.config.holder import RulesHolder
from receiver.domain import slack_page, slack_render
from receiver.outbox.policy import (
    DeliveryError,
    Reason,
    is_retryable_status,
    parse_retry_after,
    reason_for_exception,
    reason_for_status,
)
from receiver.store.base import Effect, OutboxItem, Store

log = structlog.get_logger("receiver.notify.slack")

# Slack answers these with HTTP 200 and ok=false; trying again can help.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)
UPDATES = ("incident.acknowledged", "incident.resolved", "incident.reopened",
           "incident.severity_raised")  # fmt: skip
ISSUE_LINKED = "incident.jira_linked"
DELIVERY_EVENT = "alert_receiver_delivery"
# How far before an outbox row was written an earlier copy is looked for: clock skew with Slack.
LOOKBACK_MARGIN_SECONDS = 120.0
HISTORY_LIMIT = 200
HISTORY_PAGES = 5
LIST_LIMIT = 1000
LIST_PAGES = 10
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
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
    def __init__(
        self, client: SlackClient, store: Store, rules: RulesHolder, jira_url: str | None = None
    ) -> None:
        self.client = client
        self.store = store
        self.rules = rules
        self.jira_url = jira_url  # where a page links the incident's issue

    def names(self) -> dict[str, str]:
        return {pid: p.name for pid, p in self.rules.current.people.items()}

    async def _current(self, item: OutboxItem) -> tuple[int, dict[str, Any]]:
        """The incident's id and its snapshot, refreshed with its present state."""
        if item.incident_id is None:
            raise DeliveryError("Slack delivery without an incident", retryable=False)
        snapshot = dict(item.payload.get("incident", {}))
        incident = await self.store.get_incident(item.incident_id)
        if incident is not None:
            snapshot.update(
                status=incident.status.value,
                severity=incident.severity,
                acknowledged_by=incident.acknowledged_by,
                resolved_by=incident.resolved_by,
                jira_key=incident.jira_key,
            )
        return item.incident_id, snapshot

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


class SlackNotifier(_Base):
    """Incident traffic in the alerts channel; every message updated as the incident moves."""

    async def deliver(self, item: OutboxItem) -> list[Effect]:
        """Post the event, and bring earlier messages about the incident up to date."""
        incident_id, snapshot = await self._current(item)
        names = self.names()
        text = slack_render.event_text(item.kind, snapshot, names)
        blocks = slack_render.incident_blocks(incident_id, snapshot, names)
        messages = await self.store.slack_messages(incident_id)
        if item.kind == "incident.opened":
            if item.maybe_delivered and any(p == "alerts" for _, _, p in messages):
                return []
            channel = self.rules.current.channels.alerts
            posted = await self._post_once(item, "alerts", channel, text, blocks)
            return [message(incident_id, posted, "alerts")]
        if item.kind == ISSUE_LINKED:  # the channel post shows the key now; pages keep theirs
            for channel_id, ts, purpose in messages:
                if purpose == "alerts":
                    await self.client.update(channel_id, ts, text, blocks)
            return []
        if item.kind in UPDATES:
            for channel_id, ts, _ in messages:
                await self.client.update(channel_id, ts, text, blocks)
        opening = next(((c, t) for c, t, p in messages if p == "alerts"), None)
        channel = opening[0] if opening else self.rules.current.channels.alerts
        plain = [slack_render.section(text)]
        thread_ts = opening[1] if opening else None
        await self._post_once(item, "thread", channel, text, plain, thread_ts)
        return []


class SlackPager(_Base):
    """A page: a direct message with buttons to the person, and a mention in the team channel."""

    medium = "slack"  # the channel label of receiver_page_latency_seconds

    async def deliver(self, item: OutboxItem) -> list[Effect]:
        """Reach one person."""
        incident_id, snapshot = await self._current(item)
        page = item.payload
        user = page.get("slack_id")
        if not user:
            raise DeliveryError(f"{page.get('person')} has no slack_id to page", retryable=False)
        names = self.names()
        blocks = slack_page.page_blocks(incident_id, snapshot, names, page, self.jira_url)
        text = slack_page.page_text(snapshot, names, page.get("brief") or {})
        dm = await self._post_once(item, "dm", str(user), text, blocks)
        effects = [message(incident_id, dm, "page")]  # recorded once, however often found
        team = snapshot.get("team_channel")
        if team:
            # only a well-formed user id becomes a mention; anything else is shown as text
            who = f"<@{user}>" if USER_ID.fullmatch(str(user)) else slack_render.shown(user)
            headline = slack_render.headline(snapshot)
            mention = slack_render.fit(f"{who} paged for #{incident_id}: {headline}")
            section = [slack_render.section(mention)]
            await self._post_once(item, "mention", str(team), mention, section)
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


def slack_notifiers(
    token: str, api_url: str, store: Store, rules: RulesHolder, jira_url: str | None = None
) -> tuple[SlackNotifier, SlackPager, SlackPoster]:
    """The Slack-backed notifiers over one client: incident traffic, pages (linking the JIRA
    issue at ``jira_url``), plain posts."""
    client = SlackClient(token, api_url)
    return (
        SlackNotifier(client, store, rules),
        SlackPager(client, store, rules, jira_url),
        SlackPoster(client, store, rules),
    )
