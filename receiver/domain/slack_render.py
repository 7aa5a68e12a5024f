"""Slack messages for incidents and pages: pure functions of an incident snapshot."""

from __future__ import annotations

from typing import Any

ACK_ACTION, RESOLVE_ACTION = "incident_ack", "incident_resolve"
STATUS_ICON = {"triggered": ":red_circle:", "acknowledged": ":large_yellow_circle:",
               "resolved": ":white_check_mark:"}  # fmt: skip


def _escape(text: str) -> str:
    """Slack mrkdwn escaping: &, < and > only."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(incident: dict[str, Any]) -> str:
    """One line: status, severity, category and summary."""
    icon = STATUS_ICON.get(incident.get("status", ""), ":grey_question:")
    return (
        f"{icon} *[{incident.get('severity')}][{incident.get('category')}]* "
        f"{_escape(str(incident.get('summary', '')))}"
    )


def status_line(incident: dict[str, Any], names: dict[str, str]) -> str:
    """Where the incident stands, with who acknowledged or resolved it."""
    status = incident.get("status", "triggered")
    if status == "acknowledged":
        who = names.get(incident.get("acknowledged_by") or "", incident.get("acknowledged_by"))
        return f"Acknowledged by {_escape(str(who))}"
    if status == "resolved":
        who = incident.get("resolved_by")
        return (
            f"Resolved by {_escape(names.get(who, who))}"
            if who
            else "Resolved: all alerts resolved"
        )
    return f"Triggered — team {incident.get('team')}, JIRA {incident.get('jira_key') or 'pending'}"


def incident_blocks(
    incident_id: int, incident: dict[str, Any], names: dict[str, str], note: str = ""
) -> list[dict[str, Any]]:
    """The incident message: headline, status, and buttons while it is not resolved."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline(incident)}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"#{incident_id} · {status_line(incident, names)}"}
            ],
        },
    ]
    if note:
        blocks.insert(1, {"type": "section", "text": {"type": "mrkdwn", "text": _escape(note)}})
    status = incident.get("status")
    buttons = []
    if status == "triggered":
        buttons.append(_button("Acknowledge", ACK_ACTION, incident_id, "primary"))
    if status in ("triggered", "acknowledged"):
        buttons.append(_button("Resolve", RESOLVE_ACTION, incident_id, "danger"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def _button(text: str, action: str, incident_id: int, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action,
        "value": str(incident_id),
        "style": style,
    }


def event_text(kind: str, incident: dict[str, Any], names: dict[str, str]) -> str:
    """The plain-text line posted for an incident event (also the notification text)."""
    base = f"[{incident.get('severity')}][{incident.get('category')}] {incident.get('summary')}"
    if kind == "incident.opened":
        return f"New incident: {base}"
    if kind == "incident.acknowledged":
        return f"{status_line(incident, names)}: {base}"
    if kind == "incident.resolved":
        return f"{status_line(incident, names)}: {base}"
    if kind == "incident.reopened":
        return f"Reopened: {base}"
    if kind == "incident.severity_raised":
        return f"Severity raised to {incident.get('severity')}: {base}"
    return f"{kind}: {base}"
