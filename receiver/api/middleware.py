"""Middlewares: request context and one summary log line, JSON errors, webhook metrics."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from receiver.api.keys import METRICS, SETTINGS

log = structlog.get_logger("receiver.http")
# Request ids: unique per process start, cheap per request (no entropy read each time).
_PREFIX = uuid.uuid4().hex[:8]
_COUNTER = itertools.count(1)
# Handlers add summary fields to the request's log line here.
LOG_FIELDS = web.RequestKey("log_fields", dict[str, Any])


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    """Every error body is JSON ``{"error": ...}``."""
    return web.json_response({"error": message, **extra}, status=status)


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
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
