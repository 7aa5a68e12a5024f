"""The notices a beta tester gets about their own report: the receipt with its reference,
and word when it is fixed, in ``reports.locale`` (message catalogs), times in the owning
team's zone. Pure. The resolution answers in the receipt's thread, and both answer in the
reporter's own thread when the report came by e-mail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from receiver import i18n
from receiver.config.models import RulesConfig
from receiver.domain.delivery import Kind
from receiver.domain.jira_render import one_line
from receiver.domain.model import Incident
from receiver.domain.reports import FiledReport
from receiver.domain.timeline import zone_of

PRIVATE = ["to", "text"]  # the contact, and a text that greets the reporter by name


def message_id(filed: FiledReport, what: str, installation: str) -> str:
    """The notice's Message-ID: the same whenever the notice is retried."""
    return f"<{filed.reference}.{what}.{installation}@alert-receiver>"


def notice(
    kind: str, filed: FiledReport, incident: Incident, cfg: RulesConfig, at: datetime,
    installation: str,
) -> dict[str, Any] | None:  # fmt: skip
    """The instruction of a notice to the reporter over the channel the report came in on
    (``via``: a Telegram message to the chat that wrote to the bot, else an e-mail), or None
    when there is no way back (a web report with no e-mail)."""
    chat = filed.report.reporter.telegram if filed.report.source == "telegram" else None
    to = filed.report.reporter.email
    if to is None and chat is None:
        return None
    locale = cfg.reports.locale
    what = "receipt" if kind == Kind.REPORT_RECEIVED else "resolved"
    values = {
        "name": filed.report.reporter.name or i18n.text(locale, "tester"),
        "reference": filed.reference,
        "title": filed.report.title,
        "at": i18n.when(at, zone_of(incident, cfg), locale),
    }
    subject = i18n.text(locale, f"{what}.subject", **values)
    if chat is not None:
        body = i18n.text(locale, "receipt.body" if what == "receipt" else "resolved.chat", **values)
        text = f"{subject}\n\n{body}"
        return {
            "via": "telegram",
            "chat_id": chat,
            "text": text,
            "reference": filed.reference,
            "locale": locale,
            "private": ["chat_id", "text"],
        }
    thread = filed.report.thread  # it came by e-mail: answered in the reporter's thread
    out: dict[str, Any] = {
        "via": "email",
        "to": to,
        "subject": one_line(f"Re: {filed.report.title}" if thread else subject),
        "text": i18n.text(locale, f"{what}.body", **values),
        "message_id": message_id(filed, what, installation),
        "reference": filed.reference,
        "locale": locale,
        "private": PRIVATE,
    }
    receipt = message_id(filed, "receipt", installation)
    if what == "resolved":
        out["in_reply_to"] = receipt
        out["references"] = [m for m in (thread, receipt) if m]
    elif thread:
        out["in_reply_to"] = thread
        out["references"] = [thread]
    return out
