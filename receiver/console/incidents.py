"""The console's incidents: the list (filters, kept up to date by short polling of its rows),
one incident (alerts, timeline, pages and deliveries, phase clocks, JIRA link) and the
actions on it. Every action goes through the same service methods as the API and Slack, as
the signed-in person, so it is on the timeline with their name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from receiver.api.incidents import known_filters
from receiver.api.keys import CLOCK, RULES, SERVICE, SETTINGS, STORE
from receiver.api.views import held, pages_view
from receiver.console.auth import redirect, refused, signed_in
from receiver.console.render import SESSION, page
from receiver.domain import phases
from receiver.domain.actions import NOTE_MAX
from receiver.domain.incidents import Reason
from receiver.domain.model import Incident
from receiver.service import NotFound
from receiver.service.maintenance import NoSuchWindow
from receiver.store.base import StoreUnavailable

LIST_LIMIT = 100
# What each button does, by the form's ``action``: the service's method of that name.
ACTIONS = ("acknowledge", "mitigate", "resolve", "report", "unacknowledge", "escalate")
# The notices a page shows after an action (?done=...), by message key.
NOTICES = frozenset(
    f"{what}.{outcome}"
    for what in (*ACTIONS, "note", "reassign", "link", "retry", "triage")
    for outcome in ("applied", "already", "conflict")
)
MAX_NOTE = NOTE_MAX


def filters_of(request: web.Request) -> tuple[dict[str, str], list[str]]:
    """The list's filters from the query (the API's, and ``status=all``), and those given
    with a value the rules do not know (a bookmark of a team since renamed): left out, and
    said on the page."""
    known = known_filters(request.app[RULES].current)
    known["status"] = (*known["status"], "all")
    out = {"status": "open"}
    ignored = []
    for name, allowed in known.items():
        value = request.query.get(name, "")
        if value in allowed:
            out[name] = value
        elif value:
            ignored.append(name)
    return out, ignored


def parse_id(raw: str) -> int | None:
    """An id in a path or a form: a positive integer in ASCII digits, else None."""
    raw = raw.strip().lstrip("#")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value < 2**63 else None


async def _listed(request: web.Request, filters: dict[str, str]) -> list[Incident]:
    status = filters.get("status")
    return await request.app[STORE].list_incidents(
        None if status == "all" else status,
        filters.get("severity"),
        LIST_LIMIT,
        None,
        team=filters.get("team"),
        category=filters.get("category"),
        source=filters.get("source"),
    )


def _options(request: web.Request) -> dict[str, Any]:
    known = known_filters(request.app[RULES].current)
    return {
        "statuses": (*known["status"], "all"),
        "severities": known["severity"],
        "teams": known["team"],
        "categories": known["category"],
        "sources": known["source"],
    }


@signed_in
async def incident_list(request: web.Request) -> web.StreamResponse:
    """``GET /ui/``: incidents, newest first, open ones unless the filters say otherwise."""
    filters, ignored = filters_of(request)
    try:
        incidents = await _listed(request, filters)
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    return page(request, "incidents.html", incidents=incidents, filters=filters,
                ignored=ignored, options=_options(request), nav="incidents")  # fmt: skip


@signed_in
async def incident_rows(request: web.Request) -> web.StreamResponse:
    """``GET /ui/incidents/rows?…``: the list's rows alone, polled by the page's script."""
    filters, _ = filters_of(request)
    try:
        incidents = await _listed(request, filters)
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    return page(request, "rows.html", incidents=incidents)


def _id(request: web.Request) -> int | None:
    return parse_id(request.match_info["id"])


@signed_in
async def incident(request: web.Request) -> web.StreamResponse:
    """``GET /ui/incidents/{id}``: everything about one incident, and what can be done."""
    incident_id = _id(request)
    if incident_id is None:
        return refused(request, 404, "error.no_incident")
    store = request.app[STORE]
    try:
        found = await store.get_incident(incident_id)
        if found is None:
            return refused(request, 404, "error.no_incident")
        alerts = (await store.incident_alerts([incident_id]))[incident_id]
        timeline = await store.timeline(incident_id)
        deliveries = await store.deliveries(None, incident_id, 500)
        linked = await store.link_of(incident_id)
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    cfg = request.app[RULES].current
    now = request.app[CLOCK]()
    jira = request.app[SETTINGS].jira_url
    done = request.query.get("done", "")
    return page(
        request,
        "incident.html",
        incident=found,
        alerts=alerts,
        timeline=list(reversed(timeline)),
        deliveries=deliveries,
        dead=[d for d in deliveries if d.status == "dead"],
        pages=pages_view(deliveries, found.acknowledged_by),
        held_until=_moment(held(found, timeline, now)),
        clocks=sorted(phases.ahead(found, cfg).items(), key=lambda kv: kv[1]),
        next_step=max(phases.paged_steps(timeline, found.triggered_at), default=-1) + 1,
        jira_url=f"{jira.rstrip('/')}/browse/{found.jira_key}" if jira and found.jira_key else None,
        linked_to=linked,
        assignee=found.assignee,
        people=sorted(cfg.people.items(), key=lambda kv: kv[1].name or kv[0]),
        is_report=found.source == "report",
        notice=done if done in NOTICES else None,
        max_note=MAX_NOTE,
        nav="incidents",
    )


def _moment(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso is not None else None


async def perform(
    request: web.Request,
    action: Callable[[], Awaitable[tuple[Reason, Any]]],
    then: Callable[[Reason], str],
    missing: str = "error.no_incident",
) -> web.StreamResponse:
    """Run a form's action as the signed-in person and go to the page ``then`` names for
    its outcome; an error page for an unknown id, a store that cannot commit, or a value
    the service refuses (ValueError: a note's text)."""
    try:
        reason, _ = await action()
    except (NotFound, NoSuchWindow):
        return refused(request, 404, missing)
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    except ValueError:
        return refused(request, 400, "error.bad_note")
    return redirect(then(reason))


def _back(incident_id: int, what: str) -> Callable[[Reason], str]:
    return lambda reason: f"/ui/incidents/{incident_id}?done={what}.{reason.value}"


@signed_in
async def act(request: web.Request) -> web.StreamResponse:
    """``POST /ui/incidents/{id}/act`` with ``action``: one of the incident's buttons."""
    incident_id = _id(request)
    form = await request.post()
    action = str(form.get("action", ""))
    if incident_id is None or action not in ACTIONS:
        return refused(request, 400, "error.bad_form")
    service, by = request.app[SERVICE], request[SESSION].person
    raw_step = str(form.get("step", ""))  # the step the page showed as next (escalate)
    step = parse_id(raw_step) if raw_step != "0" else 0
    run = {
        "acknowledge": lambda: service.acknowledge(incident_id, by),
        "mitigate": lambda: service.mitigate(incident_id, by),
        "resolve": lambda: service.resolve(incident_id, by),
        "report": lambda: service.report(incident_id, by),
        "unacknowledge": lambda: service.actions.unacknowledge(incident_id, by),
        "escalate": lambda: service.actions.escalate(incident_id, by, step),
    }[action]
    return await perform(request, run, _back(incident_id, action))


@signed_in
async def note(request: web.Request) -> web.StreamResponse:
    """``POST /ui/incidents/{id}/note`` with ``text`` (as ``clean_note`` keeps it)."""
    incident_id = _id(request)
    text = str((await request.post()).get("text", ""))
    if incident_id is None:
        return refused(request, 404, "error.no_incident")
    actions, by = request.app[SERVICE].actions, request[SESSION].person
    return await perform(request, lambda: actions.note(incident_id, by, text),
                         _back(incident_id, "note"))  # fmt: skip


@signed_in
async def reassign(request: web.Request) -> web.StreamResponse:
    """``POST /ui/incidents/{id}/reassign`` with ``to``: a person of the rules."""
    incident_id = _id(request)
    to = str((await request.post()).get("to", ""))
    if incident_id is None or to not in request.app[RULES].current.people:
        return refused(request, 400, "error.bad_form")
    actions, by = request.app[SERVICE].actions, request[SESSION].person
    return await perform(request, lambda: actions.reassign(incident_id, by, to),
                         _back(incident_id, "reassign"))  # fmt: skip


@signed_in
async def link(request: web.Request) -> web.StreamResponse:
    """``POST /ui/incidents/{id}/link`` with ``to``: a report folded into that incident."""
    incident_id = _id(request)
    to = parse_id(str((await request.post()).get("to", "")))
    if incident_id is None or to is None:
        return refused(request, 400, "error.bad_form")
    service, by = request.app[SERVICE], request[SESSION].person
    return await perform(request, lambda: service.link(incident_id, to, by),
                         _back(incident_id, "link"))  # fmt: skip


@signed_in
async def retry(request: web.Request) -> web.StreamResponse:
    """``POST /ui/incidents/{id}/retry``: every dead letter of the incident sent again."""
    incident_id = _id(request)
    if incident_id is None:
        return refused(request, 404, "error.no_incident")
    actions, by = request.app[SERVICE].actions, request[SESSION].person
    return await perform(request, lambda: actions.retry_dead(incident_id, by),
                         _back(incident_id, "retry"))  # fmt: skip


def routes(app: web.Application) -> None:
    app.router.add_get("/ui/", incident_list)
    app.router.add_get("/ui/incidents/rows", incident_rows)
    app.router.add_get("/ui/incidents/{id}", incident)
    app.router.add_post("/ui/incidents/{id}/act", act)
    app.router.add_post("/ui/incidents/{id}/note", note)
    app.router.add_post("/ui/incidents/{id}/reassign", reassign)
    app.router.add_post("/ui/incidents/{id}/link", link)
    app.router.add_post("/ui/incidents/{id}/retry", retry)
