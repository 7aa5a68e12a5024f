"""Fixtures for the deploy tests: those of the reliability tests (fake JIRA and Slack, an
HTTP session to 127.0.0.1)."""

from __future__ import annotations

from tests.reliability.conftest import jira, session, slack

__all__ = ["jira", "session", "slack"]
