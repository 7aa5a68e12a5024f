"""What the outbox hands an adapter and what an adapter hands back: plain data, shared by
the store, the outbox worker and the notifiers, so none of them needs another's module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


@dataclass(frozen=True)
class Effect:
    """What a delivery did outside that later deliveries of its incident build on, recorded
    with its outcome: the JIRA issue it created or found (``jira_key``: key), or a Slack
    message it posted (``slack_message``: channel id, ts, purpose), or a Telegram one
    (``telegram_message``: chat id, message id, purpose)."""

    kind: str  # "jira_key" | "slack_message" | "telegram_message"
    incident_id: int
    values: tuple[str, ...]


# A Telegram message is recorded beside the Slack messages, its chat id marked with this.
TELEGRAM_PREFIX = "tg:"


@dataclass(frozen=True)
class Prior:
    """The effects earlier deliveries of an incident recorded: its JIRA issue's key, and
    the messages posted about it as (channel id, ts, purpose), oldest first: Slack's, and
    Telegram's as (``tg:`` chat id, message id, purpose)."""

    jira_key: str | None = None
    messages: tuple[tuple[str, str, str], ...] = ()

    @property
    def slack(self) -> tuple[tuple[str, str, str], ...]:
        """The Slack messages."""
        return tuple(m for m in self.messages if not m[0].startswith(TELEGRAM_PREFIX))

    @property
    def telegram(self) -> tuple[tuple[str, str, str], ...]:
        """The Telegram messages as (chat id, message id, purpose)."""
        return tuple(
            (m[0].removeprefix(TELEGRAM_PREFIX), m[1], m[2])
            for m in self.messages
            if m[0].startswith(TELEGRAM_PREFIX)
        )


@dataclass(frozen=True)
class OutboxItem:
    """A claimed delivery: the instruction (``payload``) decided and rendered at its event,
    and, once the worker has looked them up, the effects of the incident's earlier
    deliveries (``prior``)."""

    id: int
    incident_id: int | None
    channel: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    claims: int = 1  # this claim included
    prior: Prior = field(default_factory=Prior)

    @property
    def maybe_delivered(self) -> bool:
        """An earlier attempt may have had its effect without it being recorded."""
        return self.attempts > 0 or self.claims > 1


def page_purpose(step: int, person: str) -> str:
    """The purpose a page's direct message is recorded with: which step paged whom."""
    return f"page:{step}:{person}"


class Kind(StrEnum):
    """What an outbox row is about (stored as its value)."""

    OPENED = "incident.opened"
    ALERTS_JOINED = "incident.alerts_joined"
    SEVERITY_RAISED = "incident.severity_raised"
    REOPENED = "incident.reopened"
    ACKNOWLEDGED = "incident.acknowledged"
    RESOLVED = "incident.resolved"
    MITIGATED = "incident.mitigated"  # the impact stopped (and, if still triggered, acked)
    REPORTED = "incident.reported"  # its postmortem is written
    PHASE_OVERDUE = "incident.phase_overdue"  # a phase passed its deadline
    MAINTENANCE_OVER = "incident.maintenance_over"  # its window ended: paged now
    SILENCED = "incident.silenced"  # its alerts are silenced in Alertmanager: paging paused
    ESCALATED = "incident.escalated"
    POSTMORTEM = "incident.postmortem"
    JIRA_LINKED = "incident.jira_linked"
    TRIAGED = "incident.triaged"
    LINKED = "incident.linked"
    NOTE = "incident.note"  # a person's note: a comment on the issue
    REASSIGNED = "incident.reassigned"  # handed to a person (the assignee too)
    UNACKNOWLEDGED = "incident.unacknowledged"  # an ack taken back: the ladder starts again
    REPORT_RECEIVED = "report.received"  # the reporter's receipt
    REPORT_RESOLVED = "report.resolved"  # the reporter told it is fixed
    REPORT_COMMENT = "report.comment"  # the reporter wrote again: a comment on the issue
    PAGE = "page"
    ANNOUNCE_OPENED = "announce.opened"
    ANNOUNCE_RESOLVED = "announce.resolved"
    DIGEST = "digest.weekly"
    STANDUP = "standup.daily"


class Channel(StrEnum):
    """Where an outbox row goes: each channel is delivered by its own lane."""

    JIRA = "jira"
    SLACK = "slack"
    PAGER = "pager"  # pages on Slack (direct messages)
    TELEGRAM = "telegram"  # pages on Telegram, and their edits
    ANNOUNCE_TELEGRAM = "announce_telegram"  # announcements to the testers' Telegram channel
    EMAIL = "email"  # pages by e-mail
    ANNOUNCE = "announce"
    DIGEST = "digest"
    REPORTER = "reporter"  # notices to beta testers about their own reports


class Outcome(StrEnum):
    """What became of a claimed delivery."""

    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"
    RELEASE = "release"  # not attempted to the end: any worker may claim it again now


class Notifier(Protocol):
    """Carries out one outbox instruction, or raises DeliveryError
    (``receiver.domain.failures``)."""

    async def deliver(self, item: OutboxItem) -> Sequence[Effect] | None:
        """Send the item to the outside world; return what later deliveries of the incident
        need to know of it (recorded with the outcome, in one transaction)."""
