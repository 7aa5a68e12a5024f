"""The maintenance API: ``POST /api/v1/maintenance`` makes a window, ``GET`` lists those in
force or to come at a moment (the rules file's and the API's), ``DELETE .../{id}`` ends an
API window now (the incidents it held are paged at once)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from receiver.api.incidents import BadRequest, _bad, guard, json_object, person
from receiver.api.keys import CLOCK, SERVICE
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.api.views import iso
from receiver.config.durations import format_duration
from receiver.config.matchers import parse_matcher
from receiver.domain.incidents import Reason
from receiver.domain.maintenance import Window, around
from receiver.service.maintenance import NoSuchWindow
from receiver.store.base import StoreUnavailable

MAX_MATCHERS = 20
MAX_REASON = 500
MAX_LENGTH = timedelta(days=31)  # longer, or repeating: the rules file's


def _moment(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(name, f"'{name}' must be an RFC 3339 time, e.g. 2026-12-06T02:00:00+09:00")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(name, f"'{name}' is not an RFC 3339 time: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise BadRequest(name, f"'{name}' needs an offset (+09:00) or Z: a window is two instants")
    return moment


def _matchers(body: dict[str, Any]) -> list[str]:
    found = body.get("matchers")
    if not isinstance(found, list) or not found or len(found) > MAX_MATCHERS:
        raise BadRequest(
            "matchers",
            f"'matchers' must be a list of 1 to {MAX_MATCHERS} matchers like service=\"order-api\"",
        )
    for n, text in enumerate(found):
        if not isinstance(text, str):
            raise BadRequest(f"matchers[{n}]", 'a matcher is a string like service="order-api"')
        try:
            parse_matcher(text)
        except ValueError as exc:
            raise BadRequest(f"matchers[{n}]", str(exc)) from None
    return list(found)


# Why a window cannot be made, by code: the field it is about and what the API says.
REFUSALS = {
    "order": ("ends_at", "'ends_at' must come after 'starts_at'"),
    "past": ("ends_at", "'ends_at' is past: the window would never apply"),
    "too_long": ("ends_at", "a window over 31 days belongs in the rules file"),
    "reason": ("reason", f"'reason' must say why, in 1 to {MAX_REASON} characters"),
}


def in_view(
    windows: Sequence[Window], at: datetime
) -> list[tuple[dict[str, Any], datetime, datetime]]:
    """The windows in force or to come at ``at``, the active ones first: each as the API
    shows it, with its occurrence's start and end (the API and the console list these)."""
    out = []
    for window in windows:
        found = around(window, at)
        if found is not None:
            out.append((_view(window, at, found), *found))
    out.sort(key=lambda shown: (not shown[0]["active"], shown[1], shown[0]["name"]))
    return out


def window_refusal(starts: datetime, ends: datetime, reason: object, now: datetime) -> str | None:
    """Why a window of these times and reason cannot be made now (a code of REFUSALS), or
    None; the API and the console both ask this."""
    if ends <= starts:
        return "order"
    if ends <= now:
        return "past"
    if ends - starts > MAX_LENGTH:
        return "too_long"
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        return "reason"
    return None


EXAMPLE = '{"matchers": ["service=\\"kis-gateway\\""], "starts_at": "...", "by": "kim"}'


async def create(request: web.Request) -> web.Response:
    """``POST /api/v1/maintenance`` with ``{"matchers", "starts_at", "ends_at", "reason",
    "by"}``: ``201 {"id", "name"}``."""
    if (denied := guard(request)) is not None:
        return denied
    now = request.app[CLOCK]()
    try:
        body = json_object(await request.read(), EXAMPLE)
        matchers = _matchers(body)
        starts, ends = _moment(body, "starts_at"), _moment(body, "ends_at")
        reason = body.get("reason")
        if (refused := window_refusal(starts, ends, reason, now)) is not None:
            raise BadRequest(*REFUSALS[refused])
        assert isinstance(reason, str)
        by = person(request, body)
    except BadRequest as exc:
        return _bad(exc)
    try:
        window_id = await request.app[SERVICE].maintenance.add(matchers, starts, ends, reason, by)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(maintenance=window_id, by=by)
    return web.json_response({"id": window_id, "name": f"api-{window_id}"}, status=201)


def window_view(window: Window, at: datetime) -> dict[str, Any]:
    """A window as the API shows it: its occurrence in force at ``at`` or the next one."""
    return _view(window, at, around(window, at))


def _view(window: Window, at: datetime, found: tuple[datetime, datetime] | None) -> dict[str, Any]:
    start, end = found if found is not None else (None, None)
    return {
        "id": window.id,
        "name": window.name,
        "source": window.source,
        "matchers": list(window.matchers),
        "starts_at": iso(start),
        "ends_at": iso(end),
        "active": found is not None and found[0] <= at < found[1],
        "every": format_duration(window.every) if window.every else None,
        "timezone": window.zone.key,
        "reason": window.reason,
        "by": window.by,
        "ended_by": window.ended_by,
    }


async def list_windows(request: web.Request) -> web.Response:
    """``GET /api/v1/maintenance?at=``: the windows in force or to come at ``at`` (default
    now), the active ones first."""
    if (denied := guard(request)) is not None:
        return denied
    at = request.app[CLOCK]()
    try:
        if request.query.get("at"):
            at = _moment(dict(request.query), "at")
    except BadRequest as exc:
        return _bad(exc)
    try:
        windows = await request.app[SERVICE].maintenance.windows(at)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    views = [view for view, _, _ in in_view(windows, at)]
    return web.json_response({"at": iso(at), "windows": views})


async def end(request: web.Request) -> web.Response:
    """``DELETE /api/v1/maintenance/{id}`` with ``{"by"}``: end an API window now."""
    if (denied := guard(request)) is not None:
        return denied
    raw = request.match_info["id"]
    try:
        window_id = int(raw)
        if not 0 < window_id < 2**63:
            raise ValueError(raw)
    except ValueError:
        message = "no such window; a rules-file window ends by editing the rules file"
        return error_response(404, message, id=raw[:64])
    try:
        by = person(request, json_object(await request.read(), '{"by": "kim"}'))
    except BadRequest as exc:
        return _bad(exc)
    try:
        reason, window = await request.app[SERVICE].maintenance.end(window_id, by)
    except NoSuchWindow:
        return error_response(404, "no such window", id=window_id)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(maintenance=window_id, by=by, outcome=reason.value)
    applied = reason is Reason.APPLIED
    ended = request.app[CLOCK]() if applied else window.end
    return web.json_response(
        {"id": window_id, "name": window.name, "changed": applied, "ended_at": iso(ended)}
    )
