"""Adapters that deliver outbox items: JIRA, Slack, pager, or log-only."""

from receiver.notify.base import LogNotifier, Notifier

__all__ = ["LogNotifier", "Notifier"]
