"""Operational endpoints: health, readiness, metrics, reload."""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from receiver.api.auth import authorized, unauthorized
from receiver.api.keys import METRICS, RULES, SERVICE, SETTINGS, STORE
from receiver.api.middleware import error_response
from receiver.config.loader import ConfigError, summarize
from receiver.service.reload import reload_rules
from receiver.store.base import StoreUnavailable


async def healthz(request: web.Request) -> web.Response:
    """Alive."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the store answers and rules are loaded."""
    try:
        await request.app[STORE].ping()
    except StoreUnavailable as exc:
        return error_response(503, "store unreachable", detail=str(exc)[:200])
    rules = request.app[RULES].current
    return web.json_response({"status": "ready", "rules": summarize(rules)})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; gauges of stored state are refreshed first."""
    # When the store is down, serve the last known values; readyz reports the store.
    with contextlib.suppress(StoreUnavailable):
        await request.app[SERVICE].refresh_gauges()
    body = generate_latest(request.app[METRICS].registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def reload(request: web.Request) -> web.Response:
    """``POST /-/reload``: swap in the rules file; an invalid one is refused."""
    if not authorized(request, request.app[SETTINGS].api_token):
        return unauthorized("api")
    try:
        rules = await reload_rules(request.app[RULES], request.app[STORE])
    except StoreUnavailable as exc:
        return error_response(
            503, "store unavailable; the previous rules stay in force", detail=str(exc)[:200]
        )
    except ConfigError as exc:
        return error_response(
            400,
            "invalid rules file; the previous rules stay in force",
            problems=[str(p) for p in exc.problems],
        )
    return web.json_response({"status": "reloaded", "rules": summarize(rules)})
