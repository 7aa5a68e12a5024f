"""``POST /api/v1/reports``: beta testers' reports, as JSON or multipart with attachments.

It needs no token (testers' browsers call it): what keeps it safe is CORS for the origins
of RECEIVER_REPORTS_ORIGINS only (a browser page from anywhere else is refused, preflight
or not), limits on size, count and type of attachments (by content), rate limits per client
and per reporter, and a 400 naming every bad field. Nothing of a refused report is stored,
and nothing of any report is echoed back but its reference.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from aiohttp import BodyPartReader, web

from receiver.api.keys import REPORTS, RULES, SETTINGS
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.domain.reports import (
    ENVIRONMENT_KEYS,
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    REPORTER_KEYS,
    FieldError,
    check_attachments,
    parse_report,
)
from receiver.service.reports import RateLimited
from receiver.store.base import StoreUnavailable

# A JSON report, or a multipart one's fields, at most this big; attachments come on top.
FIELDS_BYTES = 256 * 1024
BODY_BYTES = FIELDS_BYTES + MAX_ATTACHMENTS * (MAX_ATTACHMENT_BYTES + 4096)
CORS_MAX_AGE = 600


class TooLarge(Exception):
    """The body, a field or an attachment is over its limit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _origin_allowed(request: web.Request) -> tuple[bool, str | None]:
    """Whether the request's Origin (if any) may file reports, and the origin to allow."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True, None  # not a browser page: curl, a server, the e-mail intake
    if urlsplit(origin).netloc.lower() == request.host.lower():
        return True, origin  # the receiver's own /feedback page (browsers send Origin)
    return origin.rstrip("/") in request.app[SETTINGS].report_origins(), origin


def _cors(response: web.StreamResponse, origin: str | None) -> web.StreamResponse:
    response.headers["Vary"] = "Origin"
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


async def preflight(request: web.Request) -> web.StreamResponse:
    """``OPTIONS /api/v1/reports``: what a browser asks before a JSON POST."""
    allowed, origin = _origin_allowed(request)
    if not allowed or origin is None:
        return _cors(error_response(403, "origin not allowed to file reports"), None)
    response = web.Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE)
    return _cors(response, origin)


def _bad(errors: list[FieldError]) -> web.Response:
    fields = [{"field": e.field, "message": e.message} for e in errors]
    return error_response(400, "the report has bad fields", fields=fields)


async def _read_part(part: BodyPartReader, limit: int, name: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise TooLarge(name, f"{name} is over {limit} bytes")
    return bytes(data)


def _set(fields: dict[str, Any], name: str, value: str, errors: list[FieldError]) -> None:
    """A multipart field, ``environment.os`` style or a whole object as JSON text."""
    group, dot, key = name.partition(".")
    if dot and group in ("environment", "reporter"):
        known = ENVIRONMENT_KEYS if group == "environment" else REPORTER_KEYS
        target = fields.setdefault(group, {})
        if isinstance(target, dict) and key in known:
            target[key] = value
        else:
            errors.append(FieldError(name, f"unknown; use {group}.{', {group}.'.join(known)}"))
    elif name in ("environment", "reporter"):
        try:
            fields[name] = json.loads(value)
        except ValueError:
            errors.append(FieldError(name, "must be a JSON object (or give its parts)"))
    else:
        fields[name] = value


async def _multipart(
    request: web.Request,
) -> tuple[dict[str, Any], list[tuple[str, str | None, bytes]], list[FieldError]]:
    fields: dict[str, Any] = {}
    files: list[tuple[str, str | None, bytes]] = []
    errors: list[FieldError] = []
    reader = await request.multipart()
    text_bytes = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            errors.append(FieldError("<body>", "nested multipart is not accepted"))
            continue
        name = part.name or ""
        if name == "attachments" or part.filename is not None:
            if len(files) >= MAX_ATTACHMENTS:
                raise TooLarge("attachments", f"at most {MAX_ATTACHMENTS} attachments")
            data = await _read_part(part, MAX_ATTACHMENT_BYTES, f"attachments[{len(files)}]")
            files.append((part.filename or "", part.headers.get("Content-Type"), data))
            continue
        raw = await _read_part(part, FIELDS_BYTES, name or "<field>")
        text_bytes += len(raw)
        if text_bytes > FIELDS_BYTES:
            raise TooLarge("<body>", f"the report's fields are over {FIELDS_BYTES} bytes")
        try:
            _set(fields, name, raw.decode("utf-8"), errors)
        except UnicodeDecodeError:
            errors.append(FieldError(name, "must be UTF-8 text"))
    return fields, files, errors


async def _json(request: web.Request) -> Any:
    raw = bytearray()
    while chunk := await request.content.read(64 * 1024):
        raw += chunk
        if len(raw) > FIELDS_BYTES:
            raise TooLarge("<body>", f"a JSON report is at most {FIELDS_BYTES} bytes")
    return json.loads(raw)


async def file_report(request: web.Request) -> web.StreamResponse:
    """File one report; 201 with its reference (200 when it was filed already)."""
    allowed, origin = _origin_allowed(request)
    if not allowed:
        return _cors(error_response(403, "origin not allowed to file reports"), None)
    cfg = request.app[RULES].current
    service = request.app[REPORTS]
    kind = request.content_type
    try:
        if kind == "multipart/form-data":
            fields, files, errors = await _multipart(request)
        elif kind == "application/json":
            fields, files, errors = await _json(request), [], []
        else:
            message = "send application/json, or multipart/form-data with attachments"
            return _cors(error_response(415, message), origin)
    except TooLarge as exc:
        return _cors(error_response(413, str(exc), field=exc.field), origin)
    except ValueError:
        return _cors(_bad([FieldError("<body>", "is not valid JSON")]), origin)
    report, problems = parse_report(fields, list(cfg.categories))
    attachments, file_problems = check_attachments(files)
    errors += problems + file_problems
    if errors or report is None:
        service.metrics.reports_received.labels("web", "rejected").inc()
        return _cors(_bad(errors), origin)
    report = replace(report, attachments=attachments)
    try:
        service.check_rate(report, request.remote or "")
        filed = await service.file(report)
    except RateLimited as exc:
        response = error_response(429, str(exc))
        response.headers["Retry-After"] = str(math.ceil(exc.retry_after))
        return _cors(response, origin)
    except StoreUnavailable:
        return _cors(error_response(503, "the store is unavailable; try again shortly"), origin)
    request[LOG_FIELDS].update(incident_id=filed.id, reference=filed.reference)
    body = {"id": filed.id, "reference": filed.reference, "status": filed.status}
    if filed.duplicate:
        body["duplicate"] = True
    return _cors(web.json_response(body, status=200 if filed.duplicate else 201), origin)
