"""What a beta-tester report's JIRA issue says: every field the incident plan asks for
(title and description, severity and category, environment, steps, expected vs actual,
attachments, reporter), escaped like every other text the receiver writes to JIRA. The
reporter's contact is shown here, and nowhere but in the notices sent to them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from receiver.config.models import RulesConfig
from receiver.domain.jira_render import (
    DESCRIPTION_MAX,
    NOTE_MAX,
    TEXT_MAX,
    cut,
    fit,
    minute,
    paging_line,
    respond_by,
    summary,
    wiki,
    wiki_lines,
)
from receiver.domain.model import Incident
from receiver.domain.reports import Attachment, FiledReport
from receiver.domain.timeline import zone_of

REPORT_LABEL = "beta-report"
SOURCE_NAMES = {"web": "feedback form", "email": "e-mail", "telegram": "Telegram"}
# What an attachment's name on the issue may hold: letters (any script), digits, . _ -,
# so that the description can point at it ([^name], !name|thumbnail!) unescaped.
_UNSAFE_NAME = re.compile(r"[^\w.\-]+")
NAME_MAX = 100


def _rows(rows: list[tuple[str, str | None]]) -> list[str]:
    return [
        "||Field||Value||",
        *(f"|{k}|{wiki(cut(v or 'not given', NOTE_MAX))}|" for k, v in rows),
    ]


def _section(title: str, text: str | None) -> list[str]:
    return [f"h3. {title}", wiki_lines(cut(text, DESCRIPTION_MAX)) if text else "_not given_"]


def reporter_text(filed: FiledReport) -> str:
    """Who reported it and how to reach them (for JIRA only)."""
    who = filed.report.reporter
    contacts = [c for c in (who.email, who.telegram and f"Telegram {who.telegram}") if c]
    return " — ".join(p for p in (who.name, ", ".join(contacts)) if p) or "not given"


def attachment_names(attachments: Sequence[Attachment], start: int = 1) -> list[str]:
    """The names the attachments get on the issue: numbered (so that two screenshot.png
    are two files, and a redelivery finds each again), and safe in wiki markup; a
    comment's files go on numbering from ``start``."""
    names = []
    for n, attachment in enumerate(attachments, start=start):
        safe = _UNSAFE_NAME.sub("_", attachment.filename).strip("_") or "attachment"
        stem, dot, suffix = safe.rpartition(".") if "." in safe else (safe, "", "")
        room = NAME_MAX - len(f"{n}-") - len(dot + suffix)
        names.append(f"{n}-{stem[: max(1, room)]}{dot}{suffix}"[:NAME_MAX])  # keeps its type
    return names


def _attachment_lines(attachments: Sequence[Attachment], start: int = 1) -> list[str]:
    lines = []
    for name, a in zip(attachment_names(attachments, start), attachments, strict=True):
        lines.append(f"* [^{name}] ({a.content_type}, {len(a.data)} bytes)")
        if a.content_type.startswith("image/"):
            lines.append(f"!{name}|thumbnail!")
    return lines or ["_none_"]


def description(filed: FiledReport, incident: Incident, cfg: RulesConfig) -> str:
    """The issue description of a report, in JIRA wiki markup, at most 32,767 characters."""
    report, zone = filed.report, zone_of(incident, cfg)
    policy = cfg.severities.get(incident.severity)
    deadline = respond_by(incident, cfg)
    env = report.environment
    via = SOURCE_NAMES.get(report.source, report.source)
    priority = f" — JIRA priority {wiki(policy.jira_priority)}" if policy else ""
    by_rule = f" (triage rule {wiki(incident.rule)})" if incident.rule != "report" else ""
    chosen = f" (the reporter chose {wiki(report.category)})" if report.category else ""
    environment = [
        ("OS", env.os),
        ("Browser", env.browser),
        ("Device", env.device),
        ("App version", env.app_version),
    ]
    lines = [
        f"h2. {wiki(summary(incident))}",
        f"*Reference:* {filed.reference} — by {via} at {minute(filed.created_at, zone)}",
        f"*Severity:* {wiki(incident.severity)}{priority}{by_rule}",
        f"*Respond by:* {minute(deadline, zone) if deadline else 'n/a'}",
        *paging_line(incident, cfg),
        f"*Category:* {wiki(incident.category)} — owning team *{wiki(incident.team)}*{chosen}",
        f"*Incident:* #{incident.id}",
        "h3. Reporter",
        wiki(cut(reporter_text(filed), NOTE_MAX)),
        "h3. Environment",
        *_rows(environment),
        *_section("Description", report.description),
        *_section("Steps to reproduce", report.steps),
        "h3. Expected vs actual",
        f"*Expected:* {_short(report.expected)}",
        f"*Actual:* {_short(report.actual)}",
        f"h3. Attachments ({len(report.attachments)})",
        *_attachment_lines(report.attachments),
    ]
    return fit("\n".join(lines), TEXT_MAX)


def comment(
    text: str, via: str, at: str, attachments: Sequence[Attachment], start: int, left: Sequence[str]
) -> str:
    """The JIRA comment of a reporter writing again (an answer to their report's e-mail)."""
    lines = [
        f"*The reporter wrote again* ({SOURCE_NAMES.get(via, via)}, {at}):",
        wiki_lines(cut(text, DESCRIPTION_MAX)) if text else "_no text_",
    ]
    if attachments:
        lines += [f"*Attachments ({len(attachments)}):*", *_attachment_lines(attachments, start)]
    if left:
        lines.append("*Not kept:* " + wiki("; ".join(left)[:NOTE_MAX]))
    return fit("\n".join(lines), TEXT_MAX)


def _short(text: str | None) -> str:
    return wiki_lines(cut(text, NOTE_MAX)) if text else "_not given_"
