"""The throwaway Dovecot of tests/fakes/dovecot.py: delivery, IMAPS with its CA, UIDVALIDITY."""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
import struct
import zlib
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.fakes.dovecot import Dovecot


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    with Dovecot(tmp_path) as server:
        yield server


def _png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _report(subject: str, screenshot: bytes | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "tester@example.org"
    message["To"] = "beta-feedback@example.org"
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash(subject))}@example.org>"
    message.set_content("The app crashed when I tapped Save.")
    if screenshot is not None:
        message.add_attachment(
            screenshot, maintype="image", subtype="png", filename="screenshot.png"
        )
    return message


@pytest.mark.timeout(60)
def test_delivered_messages_are_read_back_over_imaps(dovecot: Dovecot) -> None:
    first = dovecot.deliver(_report("Crash on save", _png()))
    second = dovecot.deliver(b"From: a@example.org\r\nSubject: Plain one\r\n\r\nhello\r\n")
    assert second > first
    assert dovecot.uids() == [first, second]
    assert dovecot.flags(first) == set()

    imap = imaplib.IMAP4_SSL(dovecot.host, dovecot.ssl_port, ssl_context=dovecot.ssl_context())
    try:
        assert imap.login(dovecot.user, dovecot.password)[0] == "OK"
        status, _ = imap.select("INBOX")
        assert status == "OK"
        uidvalidity = imap.response("UIDVALIDITY")[1][0]
        assert uidvalidity is not None
        assert int(uidvalidity) == dovecot.uidvalidity() > 0
        status, found = imap.uid("SEARCH", "ALL")
        assert [int(uid) for uid in found[0].split()] == [first, second]
        status, fetched = imap.uid("FETCH", str(first), "(BODY.PEEK[])")
        assert status == "OK"
        raw = fetched[0][1]
        assert isinstance(raw, bytes)
    finally:
        imap.logout()

    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "Crash on save"
    (attachment,) = parsed.iter_attachments()
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_content() == _png()


@pytest.mark.timeout(60)
def test_recreating_a_mailbox_changes_its_uidvalidity(dovecot: Dovecot) -> None:
    dovecot.deliver(_report("one"))
    dovecot.deliver(_report("two"))
    before = dovecot.uidvalidity()

    dovecot.recreate_mailbox()

    assert dovecot.uids() == []
    assert dovecot.uidvalidity() != before
    assert dovecot.deliver(_report("three")) == 1  # UIDs start over as well

    other = dovecot.deliver(_report("four"), "Reports")
    assert dovecot.uids("Reports") == [other]
    before = dovecot.uidvalidity("Reports")
    dovecot.recreate_mailbox("Reports")
    assert dovecot.uidvalidity("Reports") != before
    assert dovecot.uids("Reports") == []


@pytest.mark.timeout(60)
def test_recreating_inbox_disconnects_its_sessions(dovecot: Dovecot) -> None:
    dovecot.deliver(_report("one"))
    with dovecot.client() as held:
        held.select("INBOX")
        dovecot.recreate_mailbox()
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            held.noop()


@pytest.mark.timeout(60)
def test_urls_flags_and_credentials(dovecot: Dovecot) -> None:
    tls = urlsplit(dovecot.url())
    assert (tls.scheme, tls.hostname, tls.port, tls.path) == (
        "imaps",
        "127.0.0.1",
        dovecot.ssl_port,
        "/INBOX",
    )
    assert (unquote(tls.username or ""), unquote(tls.password or "")) == (
        dovecot.user,
        dovecot.password,
    )
    plain = urlsplit(dovecot.url(tls=False))
    assert (plain.scheme, plain.port, plain.query) == ("imap", dovecot.port, "tls=none")

    uid = dovecot.deliver(_report("seen already"), flags=["\\Seen", "\\Flagged"])
    assert dovecot.flags(uid) == {"\\Seen", "\\Flagged"}
    with pytest.raises(KeyError):
        dovecot.flags(uid + 1)

    # A wrong password is refused (within half a second: auth_failure_delay is 0).
    refused = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=5)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            refused.login(dovecot.user, "wrong")
    finally:
        refused.shutdown()
    # The certificate is for 127.0.0.1 and localhost, and only our CA vouches for it.
    for host in ("127.0.0.1", "localhost"):
        imaplib.IMAP4_SSL(host, dovecot.ssl_port, ssl_context=dovecot.ssl_context()).logout()
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.ssl_port, ssl_context=ssl.create_default_context())


def test_dovecot_listens_only_on_loopback(dovecot: Dovecot) -> None:
    config = dovecot.config.read_text()
    assert "!include" not in config
    assert re.search(r"^listen = 127\.0\.0\.1$", config, re.M)
    with socket.create_connection((dovecot.host, dovecot.port), timeout=5) as sock:
        assert sock.recv(1024).startswith(b"* OK")
