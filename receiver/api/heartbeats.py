"""``POST /api/v1/heartbeats/{name}``: a sign of life from a cron job (e.g. the KIS token
refresh); ``GET /api/v1/heartbeats``: every heartbeat and whether it is alive."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from receiver.api.incidents import guard
from receiver.api.keys import HEARTBEATS, RULES
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.api.views import iso
from receiver.service.heartbeats import UnknownHeartbeat


async def ping(request: web.Request) -> web.Response:
    """Record a sign of life of one heartbeat."""
    if (denied := guard(request)) is not None:
        return denied
    name = request.match_info["name"]
    request[LOG_FIELDS].update(heartbeat=name[:100])
    try:
        at, was_missed = await request.app[HEARTBEATS].ping(name)
    except UnknownHeartbeat:
        known = ", ".join(sorted(request.app[RULES].current.heartbeats)) or "none"
        return error_response(404, f"unknown heartbeat {name[:100]!r} (known: {known})")
    return web.json_response({"name": name, "last_seen": iso(at), "was_missed": was_missed})


def _shown(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


async def list_heartbeats(request: web.Request) -> web.Response:
    """Every heartbeat of the rules: last sign of life, and waiting, alive or missed."""
    if (denied := guard(request)) is not None:
        return denied
    beats = await request.app[HEARTBEATS].status()
    return web.json_response(
        {"heartbeats": [{k: _shown(v) for k, v in beat.items()} for beat in beats]}
    )
