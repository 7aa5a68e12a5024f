"""The beta-feedback mailbox over IMAP (the standard library's ``imaplib``, in a thread of
its own): which messages are new by UID, their bytes, and marking them seen for people who
read the mailbox too. What was taken is the store's to remember, not the mailbox's flags.

``RECEIVER_REPORTS_IMAP_URL`` is ``imaps://user:password@host:993/INBOX`` (TLS from the
first byte), ``imap://user:password@host:143/INBOX`` (STARTTLS required) or
``imap://...?tls=none`` (a local server, no TLS). The mailbox is the path (default INBOX).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from receiver.domain.mail import MailboxError

T = TypeVar("T")
TIMEOUT_SECONDS = 30.0
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")


class ImapUrlError(ValueError):
    """RECEIVER_REPORTS_IMAP_URL cannot be used; the message says why."""


@dataclass(frozen=True)
class ImapTarget:
    """Where the mailbox is and how to reach it."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    mailbox: str = "INBOX"
    tls: str = "implicit"  # "implicit", "starttls" or "none"

    def describe(self) -> str:
        """The mailbox for logs, without the password."""
        scheme = "imaps" if self.tls == "implicit" else "imap"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.mailbox}"


def parse_imap_url(url: str) -> ImapTarget:
    """The mailbox an imap:// or imaps:// URL names."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ImapUrlError(
            "RECEIVER_REPORTS_IMAP_URL must be imaps://user:password@host[:port]/MAILBOX "
            "(or imap:// with STARTTLS, imap://...?tls=none for a local server)"
        )
    if not parts.username or not parts.password:
        raise ImapUrlError("RECEIVER_REPORTS_IMAP_URL must give the user and the password")
    try:
        port = parts.port
    except ValueError:
        raise ImapUrlError(
            "RECEIVER_REPORTS_IMAP_URL: the port must be a number up to 65535"
        ) from None
    tls = parse_qs(parts.query).get("tls", [""])[0]
    if tls not in ("", "none") or (tls == "none" and parts.scheme == "imaps"):
        raise ImapUrlError("RECEIVER_REPORTS_IMAP_URL: tls may only be 'none', with imap://")
    implicit = parts.scheme == "imaps"
    return ImapTarget(
        host=parts.hostname,
        port=port or (993 if implicit else 143),
        user=unquote(parts.username),
        password=unquote(parts.password),
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
        tls="implicit" if implicit else ("none" if tls == "none" else "starttls"),
    )


def _ok(answer: tuple[str, Sequence[object]], what: str) -> list[object]:
    status, data = answer
    if status != "OK":
        shown = b" ".join(d for d in data if isinstance(d, bytes))[:200]
        raise MailboxError(f"IMAP {what}: {status} {shown.decode('utf-8', 'replace')}")
    return list(data)


class ImapMailbox:
    """One connection at a time to the mailbox; every call runs in its own thread."""

    def __init__(self, target: ImapTarget, timeout: float = TIMEOUT_SECONDS) -> None:
        self.target = target
        # what the store remembers taken messages under: the account's mailbox, not a name
        # another account has too (UIDVALIDITY values are often small and shared)
        self.name = f"{target.user}@{target.host}/{target.mailbox}"
        self.timeout = timeout
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap")
        self._imap: imaplib.IMAP4 | None = None

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn)
        except (imaplib.IMAP4.error, OSError, EOFError) as exc:
            await self.close()
            raise MailboxError(f"IMAP: {type(exc).__name__}: {str(exc)[:200]}") from exc

    def _connect(self) -> int:
        t = self.target
        imap: imaplib.IMAP4
        if t.tls == "implicit":
            imap = imaplib.IMAP4_SSL(
                t.host, t.port, ssl_context=ssl.create_default_context(), timeout=self.timeout
            )
        else:
            imap = imaplib.IMAP4(t.host, t.port, timeout=self.timeout)
            if t.tls == "starttls":  # required: never logs in over plain text
                imap.starttls(ssl.create_default_context())
        self._imap = imap
        _ok(imap.login(t.user, t.password), "LOGIN")
        _ok(imap.select(_quoted(t.mailbox)), "SELECT")
        # the SELECT's [UIDVALIDITY n] response code, else the mailbox's STATUS
        given = [v for v in _untagged(imap, "UIDVALIDITY") if v.strip().isdigit()]
        if given:
            return int(given[-1])
        status = _ok(imap.status(_quoted(t.mailbox), "(UIDVALIDITY)"), "STATUS")
        found = _UIDVALIDITY.search(b" ".join(d for d in status if isinstance(d, bytes)))
        if found is None:
            raise MailboxError("IMAP: the server gave no UIDVALIDITY for the mailbox")
        return int(found.group(1))

    def describe(self) -> str:
        """Where the mailbox is, without the password."""
        return self.target.describe()

    async def open(self) -> int:
        """Log in and select the mailbox; its UIDVALIDITY."""
        return await self._call(self._connect)

    def _session(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise MailboxError("IMAP: not connected")
        return self._imap

    async def uids_after(self, last: int) -> list[int]:
        """The UIDs above ``last``, in order."""

        def search() -> list[int]:
            data = _ok(self._session().uid("SEARCH", f"UID {last + 1}:*"), "SEARCH")
            raw = b" ".join(d for d in data if isinstance(d, bytes))
            # "N:*" always matches the newest message, even when its UID is below N
            return sorted(u for u in (int(x) for x in raw.split()) if u > last)

        return await self._call(search)

    async def fetch(self, uid: int) -> bytes | None:
        """A message's bytes (not marking it seen), or None when it is gone."""

        def fetch() -> bytes | None:
            status, data = self._session().uid("FETCH", str(uid), "(BODY.PEEK[])")
            if status != "OK":  # a message the server cannot give (corrupt): taken as gone
                return None
            for item in data:
                if isinstance(item, tuple) and isinstance(item[1], bytes):
                    return item[1]
            return None

        return await self._call(fetch)

    async def mark_seen(self, uid: int) -> None:
        """Flag a message \\Seen (for people reading the mailbox)."""

        def store() -> None:
            _ok(self._session().uid("STORE", str(uid), "+FLAGS", r"(\Seen)"), "STORE")

        await self._call(store)

    async def close(self) -> None:
        """Log out, if connected; never raises."""
        imap, self._imap = self._imap, None
        if imap is None:
            return

        def logout() -> None:
            with contextlib.suppress(imaplib.IMAP4.error, OSError, EOFError):
                imap.logout()

        await asyncio.get_running_loop().run_in_executor(self._thread, logout)


def _quoted(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _untagged(imap: imaplib.IMAP4, name: str) -> list[bytes]:
    _, data = imap.response(name)
    return [d for d in data if isinstance(d, bytes)]
