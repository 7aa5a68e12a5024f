"""Slack messages for incidents and pages: pure functions of an incident snapshot."""

from __future__ import annotations

import re
from typing import Any

from receiver.domain.delivery import Kind

ACK_ACTION, RESOLVE_ACTION = "incident_ack", "incident_resolve"
MITIGATE_ACTION = "incident_mitigate"
STATUS_ICON = {"triggered": ":red_circle:", "acknowledged": ":large_yellow_circle:",
               "resolved": ":white_check_mark:"}  # fmt: skip
# Slack refuses a section or context text over 3,000 characters (invalid_blocks) and cuts a
# message's text past 40,000; every text is kept to the smaller bound.
TEXT_LIMIT = 3000
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
ZWSP = "\u200b"
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SPECIAL = re.compile(r"[&<>*_~`]|@(?=(?:here|channel|everyone)\b)")
# What a cut keeps whole: an entity, a guarded mark, a mention the receiver wrote.
_UNITS = re.compile(r"&(?:amp|lt|gt);|\u200b[*_~`]\u200b|<[^<>\s]{1,200}>|.", re.DOTALL)


def escape(text: str) -> str:
    """Slack mrkdwn that shows ``text`` as written: it cannot link, mention, quote or format."""

    def one(match: re.Match[str]) -> str:
        mark, at, whole = match.group(), match.start(), match.string
        if mark == "@":  # a plain @channel is harmless today; keep it so under any parse mode
            return "@" + ZWSP
        if mark in _ENTITIES:
            # Slack itself writes a quote as "&gt;" at the start of a line
            quote = mark == ">" and (at == 0 or whole[at - 1] == "\n")
            return (ZWSP if quote else "") + _ENTITIES[mark]
        # Bold, italics and strike only open or close next to a non-word character, so
        # label_names and snake_case keep their underscores; code marks work anywhere.
        inside = 0 < at < len(whole) - 1 and whole[at - 1].isalnum() and whole[at + 1].isalnum()
        if inside and mark != "`":
            return mark
        # mrkdwn has no escape for these: a zero-width space on each side keeps a mark from
        # opening or closing, whether Slack reads that space as a space or as a letter
        return f"{ZWSP}{mark}{ZWSP}"

    return _SPECIAL.sub(one, text)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int = TEXT_LIMIT) -> str:
    """Mrkdwn cut to ``limit`` (in UTF-16 units, so never over however Slack counts) with an
    ellipsis, never inside an escape."""
    if _utf16(text) <= limit:
        return text
    kept: list[str] = []
    used = 1  # the ellipsis
    for unit in _UNITS.finditer(text):
        size = _utf16(unit.group())
        if used + size > limit:
            break
        kept.append(unit.group())
        used += size
    return "".join(kept) + "…"


def shown(value: Any) -> str:
    """A value from an alert or the rules as one line of escaped mrkdwn."""
    return escape(" ".join(str(value).split()))


def section(text: str) -> dict[str, Any]:
    """A mrkdwn section block, its text within Slack's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text)}}


def headline(incident: dict[str, Any]) -> str:
    """One line: status, severity, category and summary."""
    icon = STATUS_ICON.get(incident.get("status", ""), ":grey_question:")
    return (
        f"{icon} *[{shown(incident.get('severity'))}][{shown(incident.get('category'))}]* "
        f"{shown(incident.get('summary', ''))}"
    )


def status_line(incident: dict[str, Any], names: dict[str, str]) -> str:
    """Where the incident stands, with who acknowledged or resolved it."""
    status = incident.get("status", "triggered")
    if status == "acknowledged" and incident.get("mitigated_by"):
        who = names.get(incident["mitigated_by"], incident["mitigated_by"])
        return f"Mitigated by {shown(who)}"
    if status == "acknowledged":
        who = names.get(incident.get("acknowledged_by") or "", incident.get("acknowledged_by"))
        return f"Acknowledged by {shown(who)}"
    if status == "resolved":
        who = incident.get("resolved_by")
        return (
            f"Resolved by {shown(names.get(who, who))}" if who else "Resolved: all alerts resolved"
        )
    team, key = shown(incident.get("team")), shown(incident.get("jira_key") or "pending")
    return f"Triggered — team {team}, JIRA {key}"


def incident_blocks(
    incident_id: int, incident: dict[str, Any], names: dict[str, str], note: str = ""
) -> list[dict[str, Any]]:
    """The incident message: headline, status, and buttons while it is not resolved."""
    status_text = fit(f"#{incident_id} · {status_line(incident, names)}")
    blocks: list[dict[str, Any]] = [
        section(headline(incident)),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": status_text}]},
    ]
    if note:
        blocks.insert(1, section(shown(note)))
    status = incident.get("status")
    buttons = []
    if status == "triggered":
        buttons.append(_button("Acknowledge", ACK_ACTION, incident_id, "primary"))
    if status in ("triggered", "acknowledged") and not incident.get("mitigated_by"):
        buttons.append(_button("Mitigated", MITIGATE_ACTION, incident_id, None))
    if status in ("triggered", "acknowledged"):
        buttons.append(_button("Resolve", RESOLVE_ACTION, incident_id, "danger"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def _button(text: str, action: str, incident_id: int, style: str | None) -> dict[str, Any]:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action,
        "value": str(incident_id),
    }
    if style is not None:  # Slack knows primary and danger; the default has no style
        button["style"] = style
    return button


def event_text(kind: str, incident: dict[str, Any], names: dict[str, str]) -> str:
    """The line posted for an incident event (also the notification text), escaped and
    within Slack's limit."""
    severity = shown(incident.get("severity"))
    base = f"[{severity}][{shown(incident.get('category'))}] {shown(incident.get('summary'))}"
    if kind == Kind.OPENED or (kind == Kind.JIRA_LINKED and incident.get("status") == "triggered"):
        text = f"New incident: {base}"
    elif kind == Kind.JIRA_LINKED or kind in (Kind.ACKNOWLEDGED, Kind.RESOLVED):
        text = f"{status_line(incident, names)}: {base}"
    elif kind == Kind.REOPENED:
        text = f"Reopened: {base}"
    elif kind == Kind.SEVERITY_RAISED:
        text = f"Severity raised to {severity}: {base}"
    elif kind == Kind.REPORT_COMMENT:
        after = " after it was resolved" if incident.get("status") == "resolved" else ""
        text = f"The reporter wrote again{after} (their words are in JIRA): {base}"
    else:
        text = f"{shown(kind)}: {base}"
    return fit(text)
