"""Slack through slack_sdk's async client: incident posts, pages as direct messages with
Acknowledge and Resolve buttons, and messages updated in place as the incident moves on.

slack_sdk's own retries are off: the outbox retries, honouring Slack's Retry-After.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from receiver.config.holder import RulesHolder
from receiver.domain import slack_render
from receiver.outbox.policy import DeliveryError, is_retryable_status, parse_retry_after
from receiver.store.base import OutboxItem, Store

log = structlog.get_logger("receiver.notify.slack")

# Slack answers these with HTTP 200 and ok=false; trying again can help.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)
UPDATES = ("incident.acknowledged", "incident.resolved", "incident.reopened",
           "incident.severity_raised")  # fmt: skip


def _error(exc: Exception) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        status = int(exc.response.status_code)
        code = str(exc.response.get("error", "")) if exc.response.data else ""
        header = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
        return DeliveryError(
            f"Slack answered {status}: {code or 'error'}",
            retryable=is_retryable_status(status) or code in RETRYABLE_ERRORS,
            retry_after=parse_retry_after(header, datetime.now().astimezone()),
        )
    return DeliveryError(f"Slack unreachable: {type(exc).__name__}: {exc}"[:500], retryable=True)


class SlackClient:
    """The calls the receiver makes, each raising DeliveryError on failure."""

    def __init__(self, token: str, api_url: str) -> None:
        self.web = AsyncWebClient(token=token, base_url=api_url, retry_handlers=[], timeout=15)

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]],
                   thread_ts: str | None = None) -> tuple[str, str]:  # fmt: skip
        """Post a message; returns (channel id, ts)."""
        try:
            answer = await self.web.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise _error(exc) from exc
        return str(answer["channel"]), str(answer["ts"])

    async def update(
        self, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        """Replace a message in place."""
        try:
            await self.web.chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise _error(exc) from exc


class _Base:
    def __init__(self, client: SlackClient, store: Store, rules: RulesHolder) -> None:
        self.client = client
        self.store = store
        self.rules = rules

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


class SlackNotifier(_Base):
    """Incident traffic in the alerts channel; every message updated as the incident moves."""

    async def deliver(self, item: OutboxItem) -> None:
        """Post the event, and bring earlier messages about the incident up to date."""
        incident_id, snapshot = await self._current(item)
        names = self.names()
        text = slack_render.event_text(item.kind, snapshot, names)
        blocks = slack_render.incident_blocks(incident_id, snapshot, names)
        messages = await self.store.slack_messages(incident_id)
        if item.kind == "incident.opened":
            if item.maybe_delivered and any(p == "alerts" for _, _, p in messages):
                return
            channel = self.rules.current.channels.alerts
            channel_id, ts = await self.client.post(channel, text, blocks)
            await self.store.add_slack_message(incident_id, channel_id, ts, "alerts")
            return
        if item.kind in UPDATES:
            for channel_id, ts, _ in messages:
                await self.client.update(channel_id, ts, text, blocks)
        opening = next(((c, t) for c, t, p in messages if p == "alerts"), None)
        channel = opening[0] if opening else self.rules.current.channels.alerts
        plain = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        await self.client.post(channel, text, plain, thread_ts=opening[1] if opening else None)


class SlackPager(_Base):
    """A page: a direct message with buttons to the person, and a mention in the team channel."""

    async def deliver(self, item: OutboxItem) -> None:
        """Reach one person."""
        incident_id, snapshot = await self._current(item)
        page = item.payload
        user = page.get("slack_id")
        if not user:
            raise DeliveryError(f"{page.get('person')} has no slack_id to page", retryable=False)
        names = self.names()
        note = f"You are paged (step {page.get('step')}, as {page.get('target')})."
        blocks = slack_render.incident_blocks(incident_id, snapshot, names, note)
        text = f"Page: {slack_render.event_text('incident.opened', snapshot, names)}"
        channel_id, ts = await self.client.post(str(user), text, blocks)
        await self.store.add_slack_message(incident_id, channel_id, ts, "page")
        team = snapshot.get("team_channel")
        if team:
            mention = f"<@{user}> paged for #{incident_id}: {slack_render.headline(snapshot)}"
            section = [{"type": "section", "text": {"type": "mrkdwn", "text": mention}}]
            await self.client.post(str(team), mention, section)


def slack_notifiers(
    token: str, api_url: str, store: Store, rules: RulesHolder
) -> tuple[SlackNotifier, SlackPager]:
    """Both Slack-backed notifiers over one client."""
    client = SlackClient(token, api_url)
    return SlackNotifier(client, store, rules), SlackPager(client, store, rules)
