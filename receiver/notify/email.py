"""E-mail over SMTP (``aiosmtplib``): the notices beta testers get about their reports, and
pages to people whose ``notify`` names e-mail.

``RECEIVER_SMTP_URL`` is ``smtp://user:password@host:587`` (STARTTLS required),
``smtp://host:25?tls=none`` (a local relay, no TLS) or ``smtps://host:465`` (TLS from the
first byte). A notice keeps one Message-ID whenever it is retried, and the resolution
answers in the receipt's thread.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import structlog

from receiver.domain.delivery import OutboxItem
from receiver.domain.failures import DeliveryError, Reason

log = structlog.get_logger("receiver.notify.email")
TIMEOUT_SECONDS = 30.0


class SmtpUrlError(ValueError):
    """RECEIVER_SMTP_URL cannot be used; the message says why."""


def parse_smtp_url(url: str) -> dict[str, Any]:
    """aiosmtplib's connection arguments from an smtp:// or smtps:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SmtpUrlError(
            "RECEIVER_SMTP_URL must be smtp://[user:password@]host[:port] or smtps://"
        )
    tls = parse_qs(parts.query).get("tls", [""])[0]
    if tls not in ("", "none"):
        raise SmtpUrlError("RECEIVER_SMTP_URL: tls may only be 'none' (for a local relay)")
    implicit = parts.scheme == "smtps"
    return {
        "hostname": parts.hostname,
        "port": parts.port or (465 if implicit else 587),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "use_tls": implicit,
        "start_tls": not (implicit or tls == "none"),  # True: required, never skipped
        "timeout": TIMEOUT_SECONDS,
    }


class EmailNotifier:
    """Sends the e-mails the reporter and email channels' instructions describe."""

    medium = "email"

    def __init__(self, url: str, sender: str) -> None:
        self.connection = parse_smtp_url(url)
        self.sender = sender

    def message(self, order: dict[str, Any]) -> EmailMessage:
        """The e-mail an instruction describes."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = order["to"]
        mail["Subject"] = order["subject"]
        mail["Message-ID"] = order["message_id"]
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        if order.get("in_reply_to"):
            mail["In-Reply-To"] = order["in_reply_to"]
            mail["References"] = " ".join(order.get("references") or [order["in_reply_to"]])
        mail["Content-Language"] = order.get("locale", "ko")
        mail.set_content(order["text"], charset="utf-8")
        return mail

    async def deliver(self, item: OutboxItem) -> None:
        """Send the notice; a refused recipient or a 5xx is for good, the rest is retried."""
        if not item.payload.get("to"):
            raise DeliveryError("no e-mail address to send to", retryable=False)
        mail = self.message(item.payload)
        try:
            await aiosmtplib.send(mail, **self.connection)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError("the recipient's address was refused", retryable=False) from exc
        except aiosmtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.code < 600
            reason = Reason.CLIENT_ERROR if permanent else Reason.SERVER_ERROR
            message = f"SMTP {exc.code}: {exc.message[:200]}"
            raise DeliveryError(message, retryable=not permanent, reason=reason) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            reason = Reason.TIMEOUT if isinstance(exc, TimeoutError) else Reason.SERVER_ERROR
            raise DeliveryError(
                f"SMTP: {type(exc).__name__}", retryable=True, reason=reason
            ) from exc
        event = "page_mailed" if item.kind == "page" else "reporter_notified"
        log.info(event, kind=item.kind, incident_id=item.incident_id,
                 reference=item.payload.get("reference"))  # fmt: skip
