"""Beta-tester reports: what a report is, how one is checked (every bad field named),
what its attachments really are (by content, not by name), and how it is triaged. Pure:
the intake (HTTP, e-mail, later Telegram) parses its own transport into these fields."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.config.models import ReportRule, RulesConfig

MAX_TITLE = 200
MAX_DESCRIPTION = 20_000
MAX_TEXT = 5_000  # steps, expected, actual
MAX_FIELD = 200  # environment and reporter values
MAX_ATTACHMENTS = 5
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
SOURCES = ("web", "email", "telegram")
ENVIRONMENT_KEYS = ("os", "browser", "device", "app_version")
REPORTER_KEYS = ("name", "email", "telegram")
TEXT_FIELDS = ("steps", "expected", "actual")
FIELDS = ("title", "description", "category", "environment", *TEXT_FIELDS, "reporter")
# Allowed attachment types by their content, and the file name endings each may carry.
ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "text/plain": (".txt", ".log", ".text"),
    "application/json": (".json",),
}
_EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
_TELEGRAM = re.compile(r"^(@[A-Za-z0-9_]{5,32}|[0-9]{1,20})$")


@dataclass(frozen=True)
class FieldError:
    """One bad field of a report: its name (dotted for nested ones) and what is wrong."""

    field: str
    message: str


@dataclass(frozen=True)
class Environment:
    """Where the tester saw the problem; every part optional."""

    os: str | None = None
    browser: str | None = None
    device: str | None = None
    app_version: str | None = None


@dataclass(frozen=True)
class Reporter:
    """Who reported it and how to tell them the outcome (at least one contact). Their
    contact is shown only in JIRA and used only for the notices sent to them."""

    name: str | None = None
    email: str | None = None
    telegram: str | None = None


@dataclass(frozen=True)
class Attachment:
    """A file attached to a report, its type as its content says."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Report:
    """A report as accepted."""

    title: str
    description: str
    reporter: Reporter
    source: str = "web"
    category: str | None = None
    environment: Environment = Environment()
    steps: str | None = None
    expected: str | None = None
    actual: str | None = None
    attachments: tuple[Attachment, ...] = ()
    thread: str | None = None  # the Message-ID of the e-mail it came in, to answer in


@dataclass(frozen=True)
class FiledReport:
    """A report as stored, under the incident it opened."""

    incident_id: int
    reference: str
    report: Report
    dedup_key: str
    created_at: datetime


@dataclass(frozen=True)
class Triage:
    """What a report becomes: its severity and category, and the rule that said so."""

    severity: str
    category: str
    rule: str | None = None


def _text(
    value: Any, name: str, limit: int, errors: list[FieldError], *, required: bool = False
) -> str | None:
    """A text field, trimmed; None when absent or blank (an error if it is required)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.append(FieldError(name, "is required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be a string"))
        return None
    text = value.replace("\r\n", "\n").strip()  # browsers send a textarea's lines with CRLF
    if len(text) > limit:
        errors.append(FieldError(name, f"is {len(text)} characters long; at most {limit}"))
        return None
    if "\x00" in text:
        errors.append(FieldError(name, "must not contain NUL characters"))
        return None
    return text


def _parts(
    value: Any, name: str, keys: Sequence[str], errors: list[FieldError]
) -> dict[str, str | None]:
    """An object of optional short strings, with no other keys."""
    if value is None:
        return dict.fromkeys(keys)
    if not isinstance(value, Mapping):
        errors.append(FieldError(name, f"must be an object with {', '.join(keys)}"))
        return dict.fromkeys(keys)
    for key in value:
        if key not in keys:
            errors.append(FieldError(f"{name}.{key}", f"unknown; use {', '.join(keys)}"))
    return {key: _text(value.get(key), f"{name}.{key}", MAX_FIELD, errors) for key in keys}


def _reporter(value: Any, errors: list[FieldError]) -> Reporter:
    before = len(errors)
    parts = _parts(value, "reporter", REPORTER_KEYS, errors)
    email, telegram = parts["email"], parts["telegram"]
    if email is not None and not _EMAIL.match(email):
        errors.append(FieldError("reporter.email", "is not an e-mail address"))
    if telegram is not None and not _TELEGRAM.match(telegram):
        errors.append(FieldError("reporter.telegram", "must be @username or a numeric id"))
    if len(errors) == before and email is None and telegram is None:
        errors.append(
            FieldError("reporter", "needs an email or telegram contact, to be told the outcome")
        )
    return Reporter(parts["name"], email, telegram)


def parse_report(
    data: Any, categories: Sequence[str], source: str = "web"
) -> tuple[Report | None, list[FieldError]]:
    """The report these fields make, or None and every field that is wrong."""
    errors: list[FieldError] = []
    if not isinstance(data, Mapping):
        return None, [FieldError("", "the report must be a JSON object")]
    for key in data:
        if key not in FIELDS and key != "attachments":
            errors.append(FieldError(str(key), f"unknown field; use {', '.join(FIELDS)}"))
    title = _text(data.get("title"), "title", MAX_TITLE, errors, required=True)
    if title is not None and ("\n" in title or "\r" in title):
        errors.append(FieldError("title", "must be one line"))
    description = _text(
        data.get("description"), "description", MAX_DESCRIPTION, errors, required=True
    )
    category = _text(data.get("category"), "category", MAX_FIELD, errors)
    if category is not None and category not in categories:
        errors.append(FieldError("category", f"unknown; use one of {', '.join(categories)}"))
    env = _parts(data.get("environment"), "environment", ENVIRONMENT_KEYS, errors)
    texts = {name: _text(data.get(name), name, MAX_TEXT, errors) for name in TEXT_FIELDS}
    reporter = _reporter(data.get("reporter"), errors)
    if source not in SOURCES:
        errors.append(FieldError("source", f"unknown; use one of {', '.join(SOURCES)}"))
    if errors or title is None or description is None:
        return None, errors
    return (
        Report(
            title=title,
            description=description,
            reporter=reporter,
            source=source,
            category=category,
            environment=Environment(**env),
            steps=texts["steps"],
            expected=texts["expected"],
            actual=texts["actual"],
        ),
        [],
    )


def sniff(data: bytes) -> str | None:
    """The type of a file by its content, among the allowed ones; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):  # a binary in disguise
        return None
    try:
        json.loads(text)
    except ValueError:
        return "text/plain"
    return "application/json" if text.lstrip()[:1] in ("{", "[") else "text/plain"


def check_attachment(
    index: int, filename: str, declared: str | None, data: bytes
) -> tuple[Attachment | None, list[FieldError]]:
    """An attachment whose content, declared type and name agree and are allowed."""
    name = f"attachments[{index}]"
    if len(data) > MAX_ATTACHMENT_BYTES:
        limit = MAX_ATTACHMENT_BYTES // (1024 * 1024)
        return None, [FieldError(name, f"is {len(data)} bytes; at most {limit} MiB")]
    if not data:
        return None, [FieldError(name, "is empty")]
    found = sniff(data)
    if found is None:
        allowed = ", ".join(ALLOWED_TYPES)
        return None, [FieldError(name, f"is not an allowed type by its content ({allowed})")]
    shown = "".join(c for c in filename if c.isprintable() and c not in "/\\")[:MAX_FIELD]
    suffix = ("." + shown.rsplit(".", 1)[-1].lower()) if "." in shown else ""
    errors: list[FieldError] = []
    text_kinds = ("text/plain", "application/json")  # close kin: a log may be JSON lines
    kin = text_kinds if found in text_kinds else (found,)
    if suffix and not any(suffix in ALLOWED_TYPES[k] for k in kin):
        errors.append(FieldError(name, f"is {found} by its content but named {suffix}"))
    declared_type = (declared or "").split(";")[0].strip().lower()
    generic = ("", "application/octet-stream")
    if declared_type not in (*generic, *kin):
        errors.append(FieldError(name, f"is {found} by its content, sent as {declared_type}"))
    if errors:
        return None, errors
    return Attachment(shown or f"attachment-{index + 1}", found, data), []


def check_attachments(
    files: Sequence[tuple[str, str | None, bytes]],
) -> tuple[tuple[Attachment, ...], list[FieldError]]:
    """Every attachment checked (file name, declared type, content)."""
    if len(files) > MAX_ATTACHMENTS:
        message = f"{len(files)} files; at most {MAX_ATTACHMENTS}"
        return (), [FieldError("attachments", message)]
    accepted: list[Attachment] = []
    errors: list[FieldError] = []
    for i, (filename, declared, data) in enumerate(files):
        attachment, problems = check_attachment(i, filename, declared, data)
        errors += problems
        if attachment is not None:
            accepted.append(attachment)
    return tuple(accepted), errors


def _matches(rule: ReportRule, report: Report) -> bool:
    match = rule.match
    if match.category is not None and report.category != match.category:
        return False
    text = f"{report.title}\n{report.description}".casefold()
    if match.keywords and not any(k.casefold() in text for k in match.keywords):
        return False
    for wanted, seen in (
        (match.os, report.environment.os),
        (match.browser, report.environment.browser),
    ):
        if wanted is not None and wanted.casefold() not in (seen or "").casefold():
            return False
    return True


def triage(report: Report, cfg: RulesConfig) -> Triage:
    """The severity and category a report gets: the first matching rule's, else the
    category the tester chose and the default severity."""
    settings = cfg.reports
    default_severity = settings.default_severity or list(cfg.severities)[-1]
    default_category = report.category or settings.default_category or cfg.defaults.category
    for rule in settings.rules:
        if _matches(rule, report):
            category = rule.category or default_category
            return Triage(rule.severity or default_severity, category, rule.name)
    return Triage(default_severity, default_category)


def reference(opened_at: datetime, number: int) -> str:
    """What the reporter quotes: ``R-<year>-<number, six digits at least>``."""
    return f"R-{opened_at.year}-{number:06d}"


def dedup_key(report: Report) -> str:
    """Reports with this key within the dedup window are one: the same contact and title.
    A digest: the key is looked up in queries a debug log may show, the contact never."""
    contact = (report.reporter.email or report.reporter.telegram or "").casefold()
    title = " ".join(report.title.casefold().split())
    return hashlib.blake2b(f"{contact}\n{title}".encode(), digest_size=16).hexdigest()
