"""The HTTP edge: what aiohttp's parser rejects is answered in JSON and logged without the
request's bytes, and clients that send their headers too slowly are dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError, LineTooLong
from yarl import URL

from receiver.api.middleware import BodyTimeout, error_response

log = structlog.get_logger("receiver.http")

_TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's message, both parsers


class CannotListen(Exception):
    """The listen address could not be bound."""


def rejection(status: int, exc: BaseException | None) -> tuple[int, str]:
    """The status and message answering a request the protocol layer refused."""
    if isinstance(exc, ContentEncodingError):  # br or zstd without their decoders
        return 415, "unsupported Content-Encoding"
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, HttpProcessingError) and exc.message == _TOO_MANY_HEADERS
    ):
        return 431, "request line or header fields too large"
    if isinstance(exc, HttpProcessingError):
        return 400, "malformed request"
    if status >= 500:
        return status, "internal error"
    return status, "request refused"


class EdgeProtocol(web.RequestHandler):
    """aiohttp's connection handler with JSON rejections, safe logs and a header deadline.

    aiohttp answers parser errors itself, before any middleware, with a text body that
    quotes the offending bytes (an Authorization header, say) and logs them with a
    traceback; ``handle_error`` and ``log_exception`` are where it does both.
    """

    __slots__ = ("_header_timeout", "_header_timer")

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()  # the first request's headers are due from the connect

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if data and self._header_timer is None:
            self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Answer the request; its headers arrived, so the next request's deadline starts
        with its own first byte."""
        self._cancel_header_timer()
        return await super().finish_response(request, resp, start_time)

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(self._header_timeout, self._headers_overdue)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_overdue(self) -> None:
        self._header_timer = None
        # ``_waiter`` is pending while aiohttp waits for the next complete request (its own
        # keep-alive check closes in that state): bytes came, but no complete request line
        # and headers. A request being handled, its body being read, is not this.
        if self._waiter is not None and not self._waiter.done():
            log.info("request_header_timeout", limit_seconds=self._header_timeout)
            self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A JSON error for a request the parser refused; logs its kind, never its bytes."""
        code, text = rejection(status, exc)
        if code >= 500:
            log.error("request_failed", status=code, exc_info=exc)
        else:
            log.info("request_rejected", status=code, error=text, kind=type(exc).__name__)
        if request.writer.output_size > 0:  # an answer is under way: only closing is left
            raise ConnectionError("response already started")
        response = error_response(code, text)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own error logs, as one structured line without exception messages
        that may quote the request."""
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError | BodyTimeout | ConnectionError):
            # The rest of a body nobody read would not decode, arrived too slowly or never
            # came: the answer is out, so the connection just closes.
            log.debug("request_body_discarded", kind=type(exc).__name__)
            return
        event = str(args[0]) if args else "http_protocol_error"
        log.error("http_protocol_error", detail=event, kind=type(exc).__name__ if exc else None)


class EdgeSite(web.BaseSite):
    """A TCP listener whose connections are served by ``EdgeProtocol``."""

    __slots__ = ("_host", "_port", "_protocol_args")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, **protocol_args: Any) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._protocol_args = protocol_args

    @property
    def name(self) -> str:
        """The URL the site listens on."""
        return str(URL.build(scheme="http", host=self._host, port=self._port))

    async def start(self) -> None:
        """Register with the runner and start listening."""
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner has been set up
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: EdgeProtocol(server, loop=loop, **self._protocol_args),
            self._host,
            self._port,
            backlog=self._backlog,
        )
