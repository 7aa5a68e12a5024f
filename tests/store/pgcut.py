"""A TCP relay to PostgreSQL that breaks a session at a chosen point around its COMMIT.

The store under test connects through it with ``sslmode=disable``, so the relay can read
the protocol's messages as they pass. Once armed, it acts on the next COMMIT a client sends:
the session is cut there, and its backend ended with ``pg_terminate_backend`` on a
connection of the relay's own, exactly as an operator or a failover would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

_NO_ENCRYPTION = (80877103, 80877104)  # SSLRequest, GSSENCRequest: answered "N" here
_TERMINATE = "SELECT pg_terminate_backend($1, 5000)"  # waits until the backend has gone


class Cut(Enum):
    """Where the session breaks."""

    BEFORE = "before"  # the COMMIT never reaches the server; the backend is terminated
    DURING = "during"  # the server runs the COMMIT; its answer never reaches the client
    AFTER = "after"  # the COMMIT is answered; the backend dies before the next request
    LOST = "lost"  # the COMMIT never arrives and the server does not notice (a lost link)


@dataclass(eq=False)
class _Session:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    pid: int = 0
    swallow: bool = False  # the server's answers go nowhere until its next ReadyForQuery
    cut_next: bool = False  # the client's next request meets a terminated backend


class CommitCutter:
    """Relays 127.0.0.1 connections to the server of ``url``; ``arm`` picks the next cut."""

    def __init__(self, url: str) -> None:
        self.target = url
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5432
        self.fired = asyncio.Event()
        self._armed: Cut | None = None
        self._server: asyncio.Server | None = None
        self._admin: Any = None
        self._sessions: set[_Session] = set()

    async def __aenter__(self) -> CommitCutter:
        self._admin = await asyncpg.connect(self.target)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for session in list(self._sessions):
            session.client.close()
            session.server.close()
        await self._server.wait_closed()
        await self._admin.close()

    def url(self, **params: str) -> str:
        """The target's URL pointed at the relay, in plain text, with these parameters."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self.target)
        netloc = parts.netloc.rsplit("@", 1)
        netloc[-1] = f"127.0.0.1:{port}"
        query = "&".join(f"{k}={v}" for k, v in {"sslmode": "disable", **params}.items())
        return urlunsplit((parts.scheme, "@".join(netloc), parts.path, query, ""))

    def arm(self, cut: Cut) -> None:
        """Break the session of the next COMMIT there (once)."""
        self.fired.clear()
        self._armed = cut

    async def _terminate(self, session: _Session) -> None:
        await self._admin.fetchval(_TERMINATE, session.pid)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        session = _Session(writer, up_writer)
        self._sessions.add(session)
        try:
            up_writer.write(await _startup(reader, writer))
            await asyncio.gather(
                self._from_client(session, reader), self._from_server(session, up_reader)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._sessions.discard(session)
            writer.close()
            up_writer.close()

    async def _from_client(self, session: _Session, reader: asyncio.StreamReader) -> None:
        keep_server = False
        try:
            while True:
                kind, raw = await _message(reader)
                if session.cut_next:  # dropped: the backend dies instead of answering it
                    session.cut_next = False
                    await self._terminate(session)
                    self.fired.set()
                    continue
                cut = self._armed
                if cut is not None and kind == b"Q" and raw[5:].startswith(b"COMMIT"):
                    self._armed = None
                    if cut is Cut.BEFORE:
                        await self._terminate(session)
                    if cut in (Cut.BEFORE, Cut.LOST):
                        keep_server = cut is Cut.LOST  # its backend waits on, unaware
                        self.fired.set()
                        return
                    session.swallow = cut is Cut.DURING
                    session.cut_next = cut is Cut.AFTER
                session.server.write(raw)
                await session.server.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            session.client.close()
            if not keep_server:
                session.server.close()

    async def _from_server(self, session: _Session, reader: asyncio.StreamReader) -> None:
        while True:
            kind, raw = await _message(reader)
            if kind == b"K":  # BackendKeyData: the backend's pid
                session.pid = int.from_bytes(raw[5:9], "big")
            if session.swallow:
                if kind == b"Z":  # the COMMIT is over on the server; the client never hears
                    await self._terminate(session)
                    self.fired.set()
                    session.client.close()
                    return
                continue
            if not session.client.is_closing():
                session.client.write(raw)
                await session.client.drain()


async def _startup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The client's startup message, after refusing any request for encryption."""
    while True:
        head = await reader.readexactly(8)
        rest = await reader.readexactly(int.from_bytes(head[:4], "big") - 8)
        if int.from_bytes(head[4:8], "big") in _NO_ENCRYPTION and not rest:
            writer.write(b"N")
            await writer.drain()
            continue
        return head + rest


async def _message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One protocol message: its type byte and all its bytes."""
    head = await reader.readexactly(5)
    body = await reader.readexactly(int.from_bytes(head[1:5], "big") - 4)
    return head[:1], head + body
