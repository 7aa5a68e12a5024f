"""Middlewares: request context and one summary log line, JSON errors, webhook metrics, and
the body rules (known Content-Encodings only, the whole body within the body timeout)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import structlog
from aiohttp import StreamReader, hdrs, web
from aiohttp.typedefs import Handler

from receiver.api.keys import METRICS, SETTINGS

log = structlog.get_logger("receiver.http")
# Request ids: unique per process start, cheap per request (no entropy read each time).
_PREFIX = uuid.uuid4().hex[:8]
_COUNTER = itertools.count(1)
# Handlers add summary fields to the request's log line here.
LOG_FIELDS = web.RequestKey("log_fields", dict[str, Any])


# Content-Encodings a request body may have (aiohttp reads anything else as identity).
DECODABLE = frozenset({"identity", "gzip", "deflate"})
DECODABLE_LIST = sorted(DECODABLE)


class BodyTimeout(Exception):
    """The request body did not arrive within the body timeout."""


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    """Every error body is JSON ``{"error": ...}``."""
    return web.json_response({"error": message, **extra}, status=status)


def _body_overdue(content: StreamReader) -> None:
    if not content.is_eof():  # wakes the handler's read with the timeout
        content.set_exception(BodyTimeout())


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.body_exists:
        return await _answer(request, handler)
    encoding = request.headers.get(hdrs.CONTENT_ENCODING)
    response: web.StreamResponse
    if encoding is not None and encoding.strip().lower() not in DECODABLE:
        response = error_response(415, "unsupported Content-Encoding", supported=DECODABLE_LIST)
    else:
        timeout = request.app[SETTINGS].body_timeout_seconds
        deadline = asyncio.get_running_loop().call_later(timeout, _body_overdue, request.content)
        try:
            response = await _answer(request, handler)
        except BodyTimeout:
            response = error_response(
                408, "request body not received in time", limit_seconds=timeout
            )
        finally:
            deadline.cancel()
    if request.content.exception() is not None or not request.content.is_eof():
        # The rest of this body will not decode, or is still on its way and not wanted:
        # tell the client the connection closes rather than reset it under its next request.
        response.force_close()
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(413, "request body too large", limit_bytes=limit)
    except web.RequestPayloadError:  # a body its Content-Encoding or chunking cannot decode
        return error_response(400, "request body could not be decoded", field="<body>")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)
    except BodyTimeout:
        raise
    except Exception:
        log.exception("unhandled_error", method=request.method, path=request.path)
        return error_response(500, "internal error")


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id, turn HTTP exceptions into JSON, log one line, time webhooks."""
    request_id = request.headers.get("X-Request-Id") or f"{_PREFIX}-{next(_COUNTER):x}"
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id[:64])
    request[LOG_FIELDS] = {}
    started = time.perf_counter()
    code = 500
    try:
        response = await _handle(request, handler)
        code = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        if request.path == "/webhook" and request.method == "POST":
            metrics = request.app[METRICS]
            metrics.webhook_requests.labels(str(code)).inc()
            metrics.webhook_duration.observe(elapsed)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=code,
            duration_ms=round(elapsed * 1000, 2),
            **request[LOG_FIELDS],
        )
        structlog.contextvars.clear_contextvars()
