"""The incidents API: list, get with timeline, acknowledge, mitigate, resolve, report,
deliveries."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from receiver.api.auth import authorized, unauthorized
from receiver.api.keys import CLOCK, RULES, SERVICE, SETTINGS, STORE
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.api.views import delivery_view, event_view, held, incident_view, pages_view
from receiver.config.models import RulesConfig
from receiver.domain.incidents import Reason
from receiver.domain.model import INCIDENT_SOURCES, Status
from receiver.domain.phase_render import text_table
from receiver.domain.timeline import as_text
from receiver.service import NotFound
from receiver.store.base import OPEN, StoreUnavailable

LIST_ALERTS_PER_INCIDENT = 50
MAX_LIMIT = 500
DELIVERY_STATUSES = ("pending", "sent", "dead")


class BadRequest(Exception):
    """A query or body that cannot be used; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _bad(exc: BadRequest) -> web.Response:
    return error_response(400, str(exc), field=exc.field)


def _int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(name, f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise BadRequest(name, f"{name} must be between {lo} and {hi}")
    return value


def _incident_id(request: web.Request) -> int:
    try:
        value = int(request.match_info["id"])
    except ValueError:
        raise BadRequest("id", "incident id must be an integer") from None
    if not 0 < value < 2**63:
        raise BadRequest("id", "incident id out of range")
    return value


def guard(request: web.Request) -> web.Response | None:
    if not authorized(request, request.app[SETTINGS].api_token):
        return unauthorized("api")
    return None


FILTERS = ("status", "severity", "team", "category", "source")
LIST_PARAMS = (*FILTERS, "limit", "before")
STATUSES = (*(s.value for s in Status), OPEN)


def known_filters(cfg: RulesConfig) -> dict[str, tuple[str, ...]]:
    """Each filter of the incident list and the values it takes under these rules."""
    return {
        "status": STATUSES,
        "severity": tuple(cfg.severities),
        "team": tuple(cfg.teams),
        "category": tuple(cfg.categories),
        "source": INCIDENT_SOURCES,
    }


def incident_filters(request: web.Request) -> dict[str, str | None]:
    """The list's filters from the query, each known to the rules (None: not given);
    BadRequest names an unknown or repeated parameter, or a value nothing has."""
    for name in request.query:
        if name not in LIST_PARAMS:
            raise BadRequest(
                name[:64], f"unknown filter {name[:64]!r}; use {', '.join(LIST_PARAMS)}"
            )
        if len(request.query.getall(name)) > 1:
            raise BadRequest(name, f"{name} given more than once")
    known = known_filters(request.app[RULES].current)
    found: dict[str, str | None] = {}
    for name in FILTERS:
        value = request.query.get(name) or None
        if value is not None and value not in known[name]:
            shown = ", ".join(known[name])
            raise BadRequest(name, f"unknown {name} {value[:32]!r} (known: {shown})")
        found[name] = value
    return found


async def list_incidents(request: web.Request) -> web.Response:
    """``GET /api/v1/incidents?status=&severity=&team=&category=&source=&limit=&before=``,
    newest first; ``status=open`` lists those triggered or acknowledged."""
    if (denied := guard(request)) is not None:
        return denied
    try:
        filters = incident_filters(request)
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        before = _int(request, "before", None, 1, 2**63 - 1)
    except BadRequest as exc:
        return _bad(exc)
    assert limit is not None
    store = request.app[STORE]
    jira_base = request.app[SETTINGS].jira_url
    cfg = request.app[RULES].current
    try:
        status, severity = filters.pop("status"), filters.pop("severity")
        incidents = await store.list_incidents(status, severity, limit, before, **filters)
        ids = [i.id for i in incidents if i.id is not None]
        alerts = await store.incident_alerts(ids, LIST_ALERTS_PER_INCIDENT)
        counts = await store.alert_counts(ids)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    body: dict[str, Any] = {
        "incidents": [
            incident_view(
                i, alerts.get(i.id or 0, []), counts.get(i.id or 0, 0), jira_base, cfg=cfg
            )
            for i in incidents
        ]
    }
    if len(incidents) == limit and ids:
        body["next_before"] = ids[-1]
    return web.json_response(body)


async def get_incident(request: web.Request) -> web.Response:
    """``GET /api/v1/incidents/{id}``: the incident, all its alerts and its timeline."""
    if (denied := guard(request)) is not None:
        return denied
    try:
        incident_id = _incident_id(request)
    except BadRequest as exc:
        return _bad(exc)
    store = request.app[STORE]
    try:
        incident = await store.get_incident(incident_id)
        if incident is None:
            return error_response(404, "no such incident", id=incident_id)
        alerts = (await store.incident_alerts([incident_id]))[incident_id]
        timeline = await store.timeline(incident_id)
        deliveries = await store.deliveries(None, incident_id, MAX_LIMIT)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    view = incident_view(
        incident, alerts, jira_base=request.app[SETTINGS].jira_url, cfg=request.app[RULES].current
    )
    view["timeline"] = [event_view(e) for e in timeline]
    view["deliveries"] = [delivery_view(d) for d in deliveries]
    view["pages"] = pages_view(deliveries, incident.acknowledged_by)
    view["pages_held_until"] = held(incident, timeline, request.app[CLOCK]())
    return web.json_response(view)


async def get_timeline(request: web.Request) -> web.Response:
    """``GET /api/v1/incidents/{id}/timeline``: JSON, or plain text for pasting into a
    report with ``?format=text`` or ``Accept: text/plain``."""
    if (denied := guard(request)) is not None:
        return denied
    try:
        incident_id = _incident_id(request)
        wanted = request.query.get("format", "")
        if wanted not in ("", "json", "text"):
            raise BadRequest("format", "format must be json or text")
    except BadRequest as exc:
        return _bad(exc)
    as_plain_text = wanted == "text" or (
        not wanted and request.headers.get("Accept", "").startswith("text/plain")
    )
    store = request.app[STORE]
    try:
        incident = await store.get_incident(incident_id)
        if incident is None:
            return error_response(404, "no such incident", id=incident_id)
        events = await store.timeline(incident_id)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    if as_plain_text:
        cfg, now = request.app[RULES].current, request.app[CLOCK]()
        table = text_table(incident, cfg, now)
        return web.Response(text=as_text(incident, events, cfg, table))
    return web.json_response(
        {"incident_id": incident_id, "timeline": [event_view(e) for e in events]}
    )


def json_object(raw: bytes, example: str) -> dict[str, Any]:
    """A request body that must be a JSON object (an empty one reads as ``{}``);
    ``example`` shows the caller what one looks like when it is not JSON at all."""
    try:
        body: Any = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise BadRequest("<body>", f"body must be JSON like {example}") from None
    if not isinstance(body, dict):
        raise BadRequest("<body>", "body must be a JSON object")
    return body


def person(request: web.Request, body: dict[str, Any]) -> str:
    """The body's ``by``: a person the rules know."""
    by = body.get("by")
    if not isinstance(by, str) or not by.strip():
        raise BadRequest("by", "'by' must name the person (a person id from the rules file)")
    if by not in request.app[RULES].current.people:
        raise BadRequest("by", f"unknown person {by[:64]!r}")
    return by


async def _by(request: web.Request) -> str:
    return person(request, json_object(await request.read(), '{"by": "<person id>"}'))


async def _act(request: web.Request, action: str) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    try:
        incident_id = _incident_id(request)
        by = await _by(request)
    except BadRequest as exc:
        return _bad(exc)
    service = request.app[SERVICE]
    act = {
        "ack": service.acknowledge,
        "mitigate": service.mitigate,
        "resolve": service.resolve,
        "report": service.report,
    }[action]
    try:
        reason, incident = await act(incident_id, by)
    except NotFound:
        return error_response(404, "no such incident", id=incident_id)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(incident_id=incident_id, action=action, by=by, outcome=reason.value)
    if reason is Reason.CONFLICT:
        why = f"incident is {incident.status.value}"
        if action == "report":
            why += ": its postmortem is reported once it is resolved"
        return error_response(409, why, id=incident_id)
    try:
        alerts = (await request.app[STORE].incident_alerts([incident_id]))[incident_id]
    except StoreUnavailable:
        alerts = []  # the change is committed; only the alert list could not be read
    view = incident_view(
        incident, alerts, jira_base=request.app[SETTINGS].jira_url, cfg=request.app[RULES].current
    )
    view["changed"] = reason is Reason.APPLIED
    return web.json_response(view)


async def acknowledge(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/ack`` with ``{"by": "<person id>"}``."""
    return await _act(request, "ack")


async def mitigate(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/mitigate`` with ``{"by": "<person id>"}``: the impact
    stopped (an incident still triggered is acknowledged with it)."""
    return await _act(request, "mitigate")


async def resolve(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/resolve`` with ``{"by": "<person id>"}``."""
    return await _act(request, "resolve")


async def report(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/report`` with ``{"by": "<person id>"}``: the resolved
    incident's postmortem is written."""
    return await _act(request, "report")


async def list_deliveries(request: web.Request) -> web.Response:
    """``GET /api/v1/deliveries?status=dead``: the outbox, dead letters included."""
    if (denied := guard(request)) is not None:
        return denied
    status = request.query.get("status") or None
    try:
        if status is not None and status not in DELIVERY_STATUSES:
            raise BadRequest("status", "status must be pending, sent or dead")
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        incident_id = _int(request, "incident", None, 1, 2**63 - 1)
    except BadRequest as exc:
        return _bad(exc)
    assert limit is not None
    try:
        rows = await request.app[STORE].deliveries(status, incident_id, limit)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    return web.json_response({"deliveries": [delivery_view(d) for d in rows]})
