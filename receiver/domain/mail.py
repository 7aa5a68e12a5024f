"""Beta testers' e-mails, read: what a message says (who sent it, its subject and text, its
files, which earlier messages it answers), whether a person wrote it at all, and the report
or the comment it makes. Pure; the IMAP intake fetches, the report service files.

A new message is a report: subject → title, text → description, From → reporter, files →
attachments (those the API would refuse are left out, and said so in the description). A
message answering an earlier one (``In-Reply-To``/``References`` naming a report's e-mail,
a comment's, or one of the notices the receiver sent) is a comment on that report. Mail
written by machines (auto-replies, bounces, lists) is neither: answering it could loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses
from html.parser import HTMLParser

from receiver.domain.reports import (
    MAX_ATTACHMENTS,
    MAX_DESCRIPTION,
    MAX_FIELD,
    MAX_TITLE,
    Attachment,
    FieldError,
    Report,
    check_attachment,
    parse_report,
)

# A Message-ID as the store keeps it: printable, without spaces, at most 250 characters
# (longer or odder ones, which no mail client writes, are not remembered, never stored).
MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,248}>")
# The reference of a report, as the notices' Message-IDs and subjects carry it.
REFERENCE = re.compile(r"\bR-\d{4}-\d{6}\b")
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|fw|fwd|답장|회신|전달)\s*(\[\d+\])?\s*:\s*)+", re.I)
_QUOTE_HEADS = (
    re.compile(r"^On .{4,200}wrote:\s*$"),  # Gmail, Apple Mail, Thunderbird
    re.compile(r"^.{4,200}(님이 작성|작성하셨습니다|님이 쓴 글):?\s*$"),  # Korean clients
    re.compile(r"^-{2,}\s*(Original Message|원본 메시지|Forwarded message)\s*-{2,}\s*$", re.I),
    re.compile(r"^(From|보낸 사람)\s*:\s*\S"),  # Outlook's quoted header block
    re.compile(r"^_{10,}$"),  # Outlook on the web's line above it
)
# Gmail wraps a long attribution: "On Mon, 1 Dec 2026 at 10:00 Kim <" / "sky@...> wrote:"
_WRAPPED_HEAD = re.compile(r"^On .{4,200}$")
_MACHINE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply)@", re.I)
CUT_NOTE = "\n\n[… the e-mail was longer; the rest is in the mailbox]"
NO_SUBJECT = "(no subject)"


class MailboxError(Exception):
    """The mailbox could not be read now (down, refused the login, timed out); the next
    poll tries again."""


@dataclass(frozen=True)
class Inbound:
    """One e-mail as the intake reads it."""

    message_id: str | None
    answers: tuple[str, ...]  # the Message-IDs of In-Reply-To and References, nearest first
    sender: str | None  # the From address
    sender_name: str | None
    subject: str
    text: str
    files: tuple[tuple[str, str | None, bytes], ...]  # (file name, declared type, content)
    automatic: bool  # written by a machine: never a report, never answered
    forged: bool = False  # the receiving server found its sender forged (DMARC/SPF fail)


class _Text(HTMLParser):
    """The text of an HTML-only e-mail: what a reader sees, line breaks kept."""

    BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(html: str) -> str:
    """Visible text of HTML, blank lines folded."""
    reader = _Text()
    reader.feed(html)
    reader.close()
    lines = [" ".join(line.split()) for line in "".join(reader.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _ids(value: str | None) -> list[str]:
    found = re.findall(r"<[^<>]*>", value or "")
    return [m for m in found if MESSAGE_ID.fullmatch(m)]


def _automatic(mail: Message, sender: str | None) -> bool:
    """Written by a machine. Mailing-list headers alone do not say so: the beta-feedback
    address may well be a group that forwards testers' mail."""
    auto = (_header(mail, "Auto-Submitted") or "no").strip().lower()
    precedence = _header(mail, "Precedence").strip().lower()
    return (
        auto != "no"
        or precedence in ("bulk", "junk", "auto_reply")
        or any(_header(mail, h) for h in ("X-Autoreply", "X-Autorespond"))
        or mail.get_content_type() == "multipart/report"  # a bounce
        or sender is None
        or bool(_MACHINE_SENDERS.match(sender))
    )


_AUTH_FAILED = re.compile(r"\b(dmarc|spf)\s*=\s*(fail|softfail)\b", re.I)


def _forged(mail: Message) -> bool:
    """Whether the receiving server said the sender is not who they claim (its
    Authentication-Results: dmarc=fail, spf=fail): such mail is not answered."""
    try:
        results = [str(v) for v in mail.get_all("Authentication-Results") or []]
    except Exception:
        return False
    return any(_AUTH_FAILED.search(r) for r in results)


def _body(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset: what can be read of it
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    text = str(content)
    return html_text(text) if part.get_content_type() == "text/html" else text.strip()


def _header(mail: Message, name: str) -> str:
    """A header's text; a header the parser cannot make sense of, as it was written."""
    try:
        return str(mail.get(name, ""))
    except Exception:  # the standard library's header classes raise on some garbage
        raw = next((v for k, v in mail.raw_items() if k.lower() == name.lower()), "")
        try:
            return str(make_header(decode_header(str(raw))))
        except Exception:
            return str(raw)


def _named_leaves(mail: EmailMessage) -> list[Message]:
    leaves: list[Message] = []
    for part in mail.walk():
        try:
            if not part.is_multipart() and part.get_filename():
                leaves.append(part)
        except Exception:
            continue
    return leaves


def _files(mail: EmailMessage) -> list[tuple[str, str | None, bytes]]:
    parts: list[Message]
    try:
        parts = list(mail.iter_attachments())
    except Exception:  # a malformed structure: the leaf parts that have a file name
        parts = _named_leaves(mail)
    files: list[tuple[str, str | None, bytes]] = []
    for part in parts:
        try:
            data = part.get_payload(decode=True)
            name = part.get_filename() or ""
        except Exception:
            continue  # a part that cannot be read is not kept (nor is the message refused)
        if isinstance(data, bytes):
            files.append((name, part.get_content_type(), data))
    return files


def read(raw: bytes) -> Inbound:
    """What an e-mail says; never raises on a malformed one (its parts may be empty)."""
    try:
        mail = message_from_bytes(raw, policy=policy.default)
    except Exception:  # garbage the parser gives up on: its text, as far as it goes
        mail = EmailMessage()
        mail.set_content(raw.decode("utf-8", "replace"))
    assert isinstance(mail, EmailMessage)
    try:
        senders = getaddresses([_header(mail, "From")])
    except Exception:
        senders = []
    name, address = senders[0] if senders else ("", "")
    address = address.strip() if "@" in address and " " not in address.strip() else ""
    replied = _ids(_header(mail, "In-Reply-To"))
    answers = [*replied, *reversed(_ids(_header(mail, "References")))]
    ids = _ids(_header(mail, "Message-ID"))
    try:
        text = _body(mail)
    except Exception:
        text = ""
    return Inbound(
        message_id=ids[0] if ids else None,
        answers=tuple(dict.fromkeys(answers)),
        sender=address or None,
        sender_name=" ".join(name.split())[:MAX_FIELD] or None,
        subject=" ".join(_header(mail, "Subject").split()),
        text=text,
        files=tuple(_files(mail)),
        automatic=_automatic(mail, address or None),
        forged=_forged(mail),
    )


def title_of(subject: str) -> str:
    """A report's title from a subject: without Re:/Fwd: prefixes, at most MAX_TITLE."""
    title = _REPLY_PREFIX.sub("", subject).strip() or NO_SUBJECT
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(CUT_NOTE)] + CUT_NOTE


def attachments_of(
    files: Sequence[tuple[str, str | None, bytes]],
) -> tuple[tuple[Attachment, ...], list[str]]:
    """The files the API would accept, and a line for each it would not."""
    kept: list[Attachment] = []
    left: list[str] = []
    for i, (filename, declared, data) in enumerate(files):
        shown = filename or f"attachment {i + 1}"
        if len(kept) >= MAX_ATTACHMENTS:
            left.append(f"{shown}: more than {MAX_ATTACHMENTS} attachments")
            continue
        found, problems = check_attachment(len(kept), filename, declared, data)
        if found is None:
            left.append(f"{shown}: {problems[0].message.removeprefix(problems[0].field)}")
        else:
            kept.append(found)
    return tuple(kept), left


def as_report(mail: Inbound, categories: Sequence[str]) -> tuple[Report | None, list[FieldError]]:
    """The report a new e-mail makes (source ``email``, threaded by its Message-ID)."""
    attachments, left = attachments_of(mail.files)
    title = title_of(mail.subject)
    text = mail.text or title
    if left:
        text = (
            _cut(text, MAX_DESCRIPTION - 400)
            + "\n\n[attachments not kept: "
            + "; ".join(line.strip() for line in left)[:300]
            + "]"
        )
    fields = {
        "title": title,
        "description": _cut(text, MAX_DESCRIPTION),
        "reporter": {"name": mail.sender_name, "email": mail.sender},
    }
    report, errors = parse_report(fields, categories, source="email")
    if report is None:
        return None, errors
    return replace(report, attachments=attachments, thread=mail.message_id), []


def new_text(text: str) -> str:
    """What a reply adds: the text above the quoted message."""
    kept: list[str] = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if any(head.match(line.strip()) for head in _QUOTE_HEADS):
            break
        following = lines[n + 1].strip() if n + 1 < len(lines) else ""
        if _WRAPPED_HEAD.match(line.strip()) and following.endswith("wrote:"):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line)
    return "\n".join(kept).strip()


def reference_in(mail: Inbound) -> str | None:
    """The report reference an answer carries (in a notice's Message-ID it answers, or its
    subject), for the reports whose e-mail the store does not know."""
    for candidate in (*mail.answers, mail.subject):
        if "@alert-receiver>" in candidate or candidate is mail.subject:
            found = REFERENCE.search(candidate)
            if found:
                return found.group(0)
    return None
