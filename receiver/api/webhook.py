"""``POST /webhook``: authenticate, validate, then commit everything before answering 200."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from receiver.api.auth import authorized, unauthorized
from receiver.api.keys import INGEST, SETTINGS
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.api.payload import PayloadProblem, read_webhook
from receiver.domain.model import Alert
from receiver.jsonfast import dumps
from receiver.pacing import Pacer
from receiver.store.base import StoreUnavailable

MAX_REPORTED_ERRORS = 20


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<body>"


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ``{"field", "message"}``, values never echoed back."""
    return [
        {"field": _field(tuple(e["loc"])), "message": e["msg"]}
        for e in exc.errors(include_input=False, include_url=False)[:MAX_REPORTED_ERRORS]
    ]


def _rejected(exc: ValidationError) -> web.Response:
    errors = validation_errors(exc)
    first = exc.errors(include_input=False, include_url=False)[0]
    if first["type"] == "json_invalid":
        return error_response(400, "malformed JSON", field="<body>", detail=first["msg"][:200])
    if errors[0]["field"] == "version":
        return error_response(
            400, "unsupported payload version; only version 4 is accepted", field="version"
        )
    return error_response(400, "invalid payload", field=errors[0]["field"], errors=errors)


async def webhook(request: web.Request) -> web.Response:
    """Receive one Alertmanager notification."""
    settings = request.app[SETTINGS]
    if not authorized(request, settings.webhook_token, allow_basic=True):
        return unauthorized("webhook")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return error_response(413, "request body too large", limit_bytes=settings.max_body_bytes)
    body = await request.read()
    group_key = ""
    alerts: list[Alert] = []
    pacer = Pacer()  # a webhook of many thousands of alerts leaves the loop to other requests
    try:
        for key, part in read_webhook(body):
            group_key = key
            alerts += part
            if pacer.due():
                await pacer.pause()
    except ValidationError as exc:
        return _rejected(exc)
    except PayloadProblem as exc:
        errors = [{"field": f, "message": m} for f, m in exc.problems[:MAX_REPORTED_ERRORS]]
        return error_response(400, "invalid payload", field=exc.field, errors=errors)
    try:
        result = await request.app[INGEST].submit(alerts)
    except StoreUnavailable as exc:
        request[LOG_FIELDS]["store_error"] = str(exc)
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(
        alerts=len(alerts),
        group_key=group_key[:200],
        incidents=result.incidents[:20],
        opened=result.opened,
        duplicates=result.duplicates,
    )
    return web.json_response(
        {
            "status": "ok",
            "alerts": len(alerts),
            "incidents": result.incidents,
            "opened": result.opened,
            "duplicates": result.duplicates,
        },
        dumps=dumps,
    )
