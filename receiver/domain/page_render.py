"""Pages and their updates as plain text, for Telegram and e-mail: pure functions of the
incident snapshot and the page's brief (``notifications.brief``).

Plain text, not markup: nothing an alert says can format, link or mention anything; only
http(s) addresses are written out, and Telegram's clients make those clickable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from receiver.domain.jira_render import one_line, web_url

TELEGRAM_TEXT_MAX = 4096  # characters of a Telegram message (after entities parsing)
DESCRIPTION_MAX = 1500
STATUS_MARK = {"triggered": "🔴", "acknowledged": "🟡", "resolved": "✅"}
# Callback data of the buttons: <action>:<incident id>, at most 64 bytes.
ACK, MITIGATE, RESOLVE = "ack", "mitigate", "resolve"
ACTIONS = (ACK, MITIGATE, RESOLVE)


def headline(incident_id: int, incident: dict[str, Any]) -> str:
    """``#12 [P1][api] KIS token refresh failing — kis-gateway``."""
    summary = one_line(str(incident.get("summary") or ""))
    return f"#{incident_id} [{incident.get('severity')}][{incident.get('category')}] {summary}"


def status_text(incident: dict[str, Any], names: dict[str, str]) -> str:
    """Where the incident stands now, and who moved it there."""
    status = str(incident.get("status") or "triggered")

    def name(key: str) -> str:
        who = str(incident.get(key) or "")
        return names.get(who, who)

    if status == "resolved":
        who = name("resolved_by")
        return f"Resolved by {who}" if who else "Resolved: all alerts resolved"
    if status == "acknowledged" and incident.get("mitigated_by"):
        return f"Mitigated by {name('mitigated_by')}"
    if status == "acknowledged":
        return f"Acknowledged by {name('acknowledged_by')}"
    return "Waiting for an acknowledgement"


def buttons(incident_id: int, incident: dict[str, Any]) -> list[list[dict[str, str]]]:
    """The inline keyboard for the incident's state: what can still be done."""
    status = incident.get("status")
    row: list[dict[str, str]] = []
    if status == "triggered":
        row.append({"text": "Acknowledge", "data": f"{ACK}:{incident_id}"})
    if status in ("triggered", "acknowledged") and not incident.get("mitigated_by"):
        row.append({"text": "Mitigated", "data": f"{MITIGATE}:{incident_id}"})
    if status in ("triggered", "acknowledged"):
        row.append({"text": "Resolve", "data": f"{RESOLVE}:{incident_id}"})
    return [row] if row else []


def parse_action(data: str) -> tuple[str, int] | None:
    """(action, incident id) of a button's callback data, or None if it is not ours."""
    action, _, number = data.partition(":")
    if action not in ACTIONS or not number.isdigit() or len(number) > 18:
        return None
    incident_id = int(number)
    return (action, incident_id) if incident_id > 0 else None


def _links(
    incident_id: int, incident: dict[str, Any], brief: dict[str, Any], urls: dict[str, str | None]
) -> list[str]:
    lines = []
    console = urls.get("public_url")
    if console:
        lines.append(f"Incident: {console.rstrip('/')}/api/v1/incidents/{incident_id}")
    key, jira = incident.get("jira_key"), urls.get("jira_url")
    if key and jira:
        lines.append(f"JIRA {key}: {jira.rstrip('/')}/browse/{quote(str(key))}")
    for label, field in (
        ("Runbook", "runbook_url"),
        ("Graph", "graph_url"),
        ("Alertmanager", "alertmanager_url"),
    ):
        url = web_url(brief[field]) if isinstance(brief.get(field), str) else None
        if url:
            lines.append(f"{label}: {url}")
    return lines


def _plain(value: Any) -> str:
    return one_line(str(value))


def why_line(page: dict[str, Any], show: Callable[[Any], str], via: str) -> str:
    """Why this person is paged, how it came (``via``, when an earlier channel gave way),
    and by when to respond, each value through ``show``."""
    brief: dict[str, Any] = page.get("brief") or {}
    why = f"You are paged (step {show(page.get('step'))}, as {show(page.get('target'))})"
    if brief.get("trigger") == "reopened":
        why = f"Reopened — {why}"
    if brief.get("overdue"):
        why = f"{show(brief['overdue'])} {why}"
    if page.get("fallback"):
        why += f" {via}: {show(page['fallback'])}"
    if brief.get("respond_by"):
        why += f". Respond by {show(brief['respond_by'])}"
    return why + "."


def brief_lines(
    brief: dict[str, Any], show: Callable[[Any], str], show_text: Callable[[Any], str]
) -> list[str]:
    """What the alert says, since when and how many, expected against actual: the lines a
    page shows of its brief on every channel, each value through ``show`` (the alert's
    description through ``show_text``)."""
    lines = []
    if brief.get("description"):
        lines.append(show_text(str(brief["description"])[:DESCRIPTION_MAX]))
    facts = []
    if brief.get("since"):
        facts.append(f"Firing since {show(brief['since'])}")
    if brief.get("alerts") is not None:
        facts.append(f"{show(brief['alerts'])} alert(s) firing")
    if facts:
        lines.append(" · ".join(facts))
    if brief.get("expected") or brief.get("actual"):
        expected, actual = brief.get("expected") or "not given", brief.get("actual") or "not given"
        lines.append(f"Expected: {show(expected)} · Actual: {show(actual)}")
    return lines


def page_lines(
    incident_id: int,
    incident: dict[str, Any],
    page: dict[str, Any],
    urls: dict[str, str | None],
) -> list[str]:
    """A page as lines of plain text: what broke, why this person and by when, what the
    alert says, since when, expected against actual, and where to look."""
    brief: dict[str, Any] = page.get("brief") or {}
    head = f"{STATUS_MARK.get(str(incident.get('status')), '')} {headline(incident_id, incident)}"
    why = why_line(page, _plain, f"by {page.get('channel')}")
    lines = [head.strip(), why, *brief_lines(brief, _plain, str)]
    return [*lines, *_links(incident_id, incident, brief, urls)]


def fit(text: str, limit: int = TELEGRAM_TEXT_MAX) -> str:
    """Text cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def telegram_page(
    incident_id: int, incident: dict[str, Any], page: dict[str, Any], urls: dict[str, str | None]
) -> dict[str, Any]:
    """A Telegram page: its text and its buttons."""
    return {
        "text": fit("\n".join(page_lines(incident_id, incident, page, urls))),
        "buttons": buttons(incident_id, incident),
    }


def telegram_update(
    incident_id: int, incident: dict[str, Any], names: dict[str, str]
) -> dict[str, Any]:
    """What a page on Telegram becomes when the incident moves on: its state on top, the
    buttons still of use."""
    mark = STATUS_MARK.get(str(incident.get("status")), "")
    text = f"{mark} {status_text(incident, names)}\n{headline(incident_id, incident)}"
    return {"text": fit(text.strip()), "buttons": buttons(incident_id, incident)}


def email_page(
    incident_id: int, incident: dict[str, Any], page: dict[str, Any], urls: dict[str, str | None]
) -> dict[str, str]:
    """An e-mail page: subject and body."""
    subject = f"[{incident.get('severity')}] Page: {headline(incident_id, incident)}"
    lines = page_lines(incident_id, incident, page, urls)
    body = "\n\n".join(
        [
            *lines,
            "Acknowledge in Slack or Telegram, or: POST "
            f'/api/v1/incidents/{incident_id}/ack with {{"by": "{page.get("person")}"}}',
        ]
    )
    return {"subject": one_line(subject)[:250], "text": body}
