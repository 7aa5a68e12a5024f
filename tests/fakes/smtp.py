"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts."""

from __future__ import annotations

import asyncio
import socket
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller


class _Keep:
    def __init__(self, inbox: list[EmailMessage], refuse: set[str]) -> None:
        self.inbox = inbox
        self.refuse = refuse

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.inbox.append(parsed)
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSmtp:
    """``async with FakeSmtp() as smtp``: ``smtp.url`` to send to, ``smtp.inbox`` received."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.inbox: list[EmailMessage] = []
        self.port = _free_port()
        self.url = f"smtp://127.0.0.1:{self.port}?tls=none"
        self._controller = Controller(
            _Keep(self.inbox, refuse or set()), hostname="127.0.0.1", port=self.port
        )

    async def __aenter__(self) -> FakeSmtp:
        await asyncio.to_thread(self._controller.start)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self._controller.stop)
