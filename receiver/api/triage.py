"""Triage of beta-tester reports: ``POST /api/v1/incidents/{id}/triage`` (a person sets a
report's severity, category and so its team, and assignee; the severity's policy applies
from then on) and ``/link`` (a report folded into another incident, resolved with it)."""

from __future__ import annotations

from aiohttp import web

from receiver.api.incidents import BadRequest, _bad, _incident_id, guard, json_object
from receiver.api.keys import RULES, SERVICE, SETTINGS, STORE
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.api.views import incident_view
from receiver.domain.incidents import Reason
from receiver.service import NotFound
from receiver.store.base import StoreUnavailable

FIELDS = ("severity", "category", "assignee", "by")


def _fields(raw: bytes, request: web.Request) -> dict[str, str]:
    """The body's fields, every one known to the rules; BadRequest names the first wrong."""
    body = json_object(raw, '{"severity": "P1", "by": "kim"}')
    cfg = request.app[RULES].current
    pools: dict[str, list[str]] = {
        "severity": list(cfg.severities),
        "category": list(cfg.categories),
        "assignee": list(cfg.people),
        "by": list(cfg.people),
    }
    out: dict[str, str] = {}
    for name, value in body.items():
        if name not in FIELDS:
            raise BadRequest(str(name)[:64], f"unknown field; use {', '.join(FIELDS)}")
        if value is None:
            continue
        if not isinstance(value, str) or value not in pools[name]:
            known = ", ".join(pools[name])
            raise BadRequest(name, f"unknown {name} {str(value)[:64]!r} (known: {known})")
        out[name] = value
    if "by" not in out:
        raise BadRequest("by", "'by' must name the person (a person id from the rules file)")
    if not {"severity", "category", "assignee"} & set(out):
        raise BadRequest("<body>", "give a severity, a category or an assignee")
    return out


async def triage(request: web.Request) -> web.Response:
    """Triage a report; ``changed: false`` when it already was so, 409 for an alert
    incident (its rule decides) or a resolved one."""
    if (denied := guard(request)) is not None:
        return denied
    try:
        incident_id = _incident_id(request)
        fields = _fields(await request.read(), request)
    except BadRequest as exc:
        return _bad(exc)
    service = request.app[SERVICE]
    try:
        reason, incident = await service.triage(
            incident_id,
            fields["by"],
            severity=fields.get("severity"),
            category=fields.get("category"),
            assignee=fields.get("assignee"),
        )
    except NotFound:
        return error_response(404, "no such incident", id=incident_id)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(incident_id=incident_id, action="triage", outcome=reason.value)
    if reason is Reason.CONFLICT:
        why = "is resolved" if incident.source == "report" else "is an alert's: its rule decides"
        return error_response(409, f"incident {why}", id=incident_id)
    try:
        alerts = (await request.app[STORE].incident_alerts([incident_id]))[incident_id]
    except StoreUnavailable:
        alerts = []
    view = incident_view(
        incident, alerts, jira_base=request.app[SETTINGS].jira_url, cfg=request.app[RULES].current
    )
    view["changed"] = reason is Reason.APPLIED
    return web.json_response(view)


def _link_body(raw: bytes, request: web.Request) -> tuple[int, str]:
    body = json_object(raw, '{"to": 12, "by": "kim"}')
    for name in body:
        if name not in ("to", "by"):
            raise BadRequest(str(name)[:64], "unknown field; use to, by")
    to = body.get("to")
    if isinstance(to, bool) or not isinstance(to, int) or not 0 < to < 2**63:
        raise BadRequest("to", "'to' must be the id of the incident to link into")
    by = body.get("by")
    if not isinstance(by, str) or by not in request.app[RULES].current.people:
        raise BadRequest("by", "'by' must name the person (a person id from the rules file)")
    return to, by


async def link(request: web.Request) -> web.Response:
    """Link a report into another incident (``{"to", "by"}``): it is resolved with that
    one and its own escalation stops; 409 for an alert incident, a resolved one, or itself."""
    if (denied := guard(request)) is not None:
        return denied
    try:
        incident_id = _incident_id(request)
        to, by = _link_body(await request.read(), request)
    except BadRequest as exc:
        return _bad(exc)
    try:
        reason, incident = await request.app[SERVICE].link(incident_id, to, by)
    except NotFound as exc:
        return error_response(404, "no such incident", id=exc.args[0])
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(incident_id=incident_id, action="link", outcome=reason.value)
    if reason is Reason.CONFLICT:
        message = "only an open report links, into another open incident"
        return error_response(409, message, id=incident_id, to=to)
    view = incident_view(
        incident, [], jira_base=request.app[SETTINGS].jira_url, cfg=request.app[RULES].current
    )
    view["changed"] = reason is Reason.APPLIED
    view["linked_to"] = to
    return web.json_response(view)
