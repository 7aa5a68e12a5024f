"""People acting on incidents beyond ack and resolve, as ``/ack`` answers: ``/note``,
``/reassign``, ``/unack``, ``/escalate`` and ``/retry`` of an incident, and ``/retry`` of a
dead-lettered delivery. API token; JSON body with ``by`` (a person of the rules); 400
naming the field, 404, 409 when the action does not apply (the error says why), 503 when
the store is down; otherwise the incident (or delivery) with ``changed``. The work is
``receiver.service.actions``'s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from receiver.api.incidents import BadRequest, _bad, _incident_id, guard, json_object, person
from receiver.api.keys import RULES, SERVICE, SETTINGS, STORE
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.api.views import delivery_view, incident_view
from receiver.domain.actions import clean_note, refusal, retry_refusal
from receiver.domain.incidents import Reason
from receiver.domain.model import Incident
from receiver.service import NotFound
from receiver.service.actions import IncidentActions
from receiver.store.base import StoreUnavailable

# An action of IncidentActions on one incident, given the body's fields.
Act = Callable[[IncidentActions, int, dict[str, Any]], Awaitable[tuple[Reason, Incident]]]


def _fields(raw: bytes, request: web.Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """The body: a JSON object of only ``fields``, its ``by`` a person of the rules."""
    example = "{" + ", ".join(f'"{f}": "..."' for f in fields) + "}"
    body = json_object(raw, example)
    for name in body:
        if name not in fields:
            raise BadRequest(str(name)[:64], f"unknown field; use {', '.join(fields)}")
    body["by"] = person(request, body)
    return body


def _to(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    to = body.get("to")
    if not isinstance(to, str) or not to.strip():
        raise BadRequest("to", "'to' must name the person to hand it to (a person id)")
    if to not in request.app[RULES].current.people:
        raise BadRequest("to", f"unknown person {to[:64]!r}")
    return body


def _text(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    try:
        body["text"] = clean_note(body.get("text"))
    except ValueError as exc:
        raise BadRequest("text", str(exc)) from None
    return body


async def _view(request: web.Request, incident: Incident, reason: Reason) -> dict[str, Any]:
    """The incident as ``/ack`` answers it, with ``changed``."""
    assert incident.id is not None
    try:
        alerts = (await request.app[STORE].incident_alerts([incident.id]))[incident.id]
    except StoreUnavailable:
        alerts = []  # the change is committed; only the alert list could not be read
    view = incident_view(
        incident, alerts, jira_base=request.app[SETTINGS].jira_url, cfg=request.app[RULES].current
    )
    view["changed"] = reason is Reason.APPLIED
    return view


async def _incident_action(
    request: web.Request,
    action: str,
    fields: tuple[str, ...],
    act: Act,
    check: Callable[[web.Request, dict[str, Any]], dict[str, Any]] = lambda _, body: body,
) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    try:
        incident_id = _incident_id(request)
        body = check(request, _fields(await request.read(), request, fields))
    except BadRequest as exc:
        return _bad(exc)
    try:
        reason, incident = await act(request.app[SERVICE].actions, incident_id, body)
    except NotFound:
        return error_response(404, "no such incident", id=incident_id)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(
        incident_id=incident_id, action=action, by=body["by"], outcome=reason.value
    )
    if reason is Reason.CONFLICT:
        return error_response(409, refusal(action, incident), id=incident_id)
    return web.json_response(await _view(request, incident, reason))


async def note(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/note`` with ``{"by", "text"}``: a note on the
    timeline and the JIRA issue; any incident, resolved ones too."""
    return await _incident_action(
        request, "note", ("by", "text"), lambda a, i, b: a.note(i, b["by"], b["text"]), _text
    )


async def reassign(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/reassign`` with ``{"by", "to"}``: handed to ``to``
    (the issue's assignee too), who is paged now; 409 once resolved."""
    return await _incident_action(
        request, "reassign", ("by", "to"), lambda a, i, b: a.reassign(i, b["by"], b["to"]), _to
    )


async def unacknowledge(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/unack`` with ``{"by"}``: triggered again, escalation
    from step 0; 409 unless acknowledged."""
    return await _incident_action(
        request, "unack", ("by",), lambda a, i, b: a.unacknowledge(i, b["by"])
    )


def _step(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    step = body.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise BadRequest("step", "'step' must be the step to page (0, 1, ...), or left out")
    return body


async def escalate(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/escalate`` with ``{"by"}`` and, to make a retried
    request safe, the ``step`` meant: the next step paged now (``changed: false`` when
    ``step`` is paged already); 409 once resolved, past the last step, or when the next
    step is not ``step``."""
    return await _incident_action(
        request, "escalate", ("by", "step"),
        lambda a, i, b: a.escalate(i, b["by"], b.get("step")), _step,
    )  # fmt: skip


async def retry_incident(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/retry`` with ``{"by"}``: every dead letter of the
    incident sent again; ``retried`` says how many (0: none, ``changed`` false)."""
    if (denied := guard(request)) is not None:
        return denied
    try:
        incident_id = _incident_id(request)
        by = _fields(await request.read(), request, ("by",))["by"]
    except BadRequest as exc:
        return _bad(exc)
    try:
        reason, done = await request.app[SERVICE].actions.retry_dead(incident_id, by)
    except NotFound:
        return error_response(404, "no such incident", id=incident_id)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(incident_id=incident_id, action="retry", by=by, outcome=reason.value)
    view = await _view(request, done.incident, reason)
    view.update(retried=len(done.deliveries), deliveries=list(done.deliveries))
    return web.json_response(view)


def _delivery_id(request: web.Request) -> int:
    try:
        value = int(request.match_info["id"])
    except ValueError:
        raise BadRequest("id", "delivery id must be an integer") from None
    if not 0 < value < 2**63:
        raise BadRequest("id", "delivery id out of range")
    return value


async def retry_delivery(request: web.Request) -> web.Response:
    """``POST /api/v1/deliveries/{id}/retry`` with ``{"by"}``: a dead letter pending again,
    due now; 409 if it is not dead (or is a page nobody waits for any more)."""
    if (denied := guard(request)) is not None:
        return denied
    try:
        delivery_id = _delivery_id(request)
        by = _fields(await request.read(), request, ("by",))["by"]
    except BadRequest as exc:
        return _bad(exc)
    try:
        reason, delivery = await request.app[SERVICE].actions.retry_delivery(delivery_id, by)
    except NotFound:
        return error_response(404, "no such delivery", id=delivery_id)
    except StoreUnavailable:
        return error_response(503, "store unavailable; retry later")
    request[LOG_FIELDS].update(delivery=delivery_id, action="retry", by=by, outcome=reason.value)
    if reason is Reason.CONFLICT:
        why = retry_refusal(delivery.status, delivery.kind, delivery.page, None)
        if delivery.status == "dead":  # kept back for its incident's state
            why = (
                "kept back: a page is sent again only while its incident waits for an ack in "
                "its trigger, and an outage announcement only while its incident is open"
            )
        return error_response(409, why or "not retried", id=delivery_id)
    return web.json_response({"delivery": delivery_view(delivery), "changed": True})
