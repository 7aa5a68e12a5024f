"""The Slack page: what an on-call engineer woken at 3 a.m. needs to act, in one message."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from receiver.domain.delivery import Kind
from receiver.domain.jira_render import web_url
from receiver.domain.page_render import brief_lines, why_line
from receiver.domain.slack_render import (
    event_text,
    fit,
    incident_blocks,
    section,
    shown,
)


def link(url: object, label: str) -> str | None:
    """A Slack link to an http(s) address, the address made safe inside ``<…|…>``; None for
    anything else (a javascript: or file: address is never made a link)."""
    safe = web_url(url) if isinstance(url, str) else None  # | < > and spaces encoded
    if safe is None:
        return None
    return f"<{safe.replace('&', '&amp;')}|{shown(label)}>"  # Slack writes & as &amp;


def page_text(incident: dict[str, Any], names: dict[str, str], brief: dict[str, Any]) -> str:
    """The notification text of a page: whether it is new or reopened, and what broke."""
    if brief.get("overdue"):
        return fit(f"Page: {shown(brief['overdue'])}")
    reopened = brief.get("trigger") == "reopened"
    line = event_text(Kind.REOPENED if reopened else Kind.OPENED, incident, names)
    return fit(f"Page: {line}")


def page_blocks(
    incident_id: int,
    incident: dict[str, Any],
    names: dict[str, str],
    page: dict[str, Any],
    jira_url: str | None = None,
) -> list[dict[str, Any]]:
    """The page's blocks: headline; why this person and by when to respond; what the alert
    says; since when and how many alerts; expected against actual; the links; the status
    with the incident's JIRA issue; Acknowledge and Resolve."""
    brief: dict[str, Any] = page.get("brief") or {}
    lines = [why_line(page, shown, "on Slack"), *brief_lines(brief, shown, shown)]
    key = incident.get("jira_key")
    links = [
        link(brief.get("runbook_url"), "Runbook"),
        link(f"{jira_url.rstrip('/')}/browse/{quote(str(key))}", f"JIRA {key}")
        if jira_url and key
        else None,
        link(brief.get("graph_url"), "Prometheus graph"),
        link(brief.get("alertmanager_url"), "Alertmanager"),
    ]
    shown_links = [found for found in links if found]
    if shown_links:
        lines.append(" · ".join(shown_links))
    blocks = incident_blocks(incident_id, incident, names)
    return [blocks[0], *(section(line) for line in lines), *blocks[1:]]
