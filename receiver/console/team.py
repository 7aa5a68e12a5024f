"""The console's team pages: beta-tester reports to triage, who is on call, maintenance
windows, dead-lettered deliveries and the route-test form."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from receiver.api.keys import CLOCK, RULES, SERVICE, STORE
from receiver.api.maintenance import MAX_MATCHERS, MAX_REASON, in_view, window_refusal
from receiver.config.matchers import parse_matcher
from receiver.console.auth import redirect, refused, signed_in
from receiver.console.incidents import parse_id, perform
from receiver.console.render import SESSION, page, zone_of
from receiver.domain.explain import route_report
from receiver.domain.oncall import rotations_now
from receiver.domain.schedule import schedule
from receiver.store.base import StoreUnavailable

REPORTS_LIMIT = 100
DEAD_LIMIT = 200
SCHEDULE_DAYS = 14
MAX_LABELS = 50


# --- reports ---------------------------------------------------------------------------


@signed_in
async def reports(request: web.Request) -> web.StreamResponse:
    """``GET /ui/reports``: open beta-tester reports, those not triaged yet first. What the
    reporter wrote is shown; how to reach them is not (it stays in JIRA and their notices)."""
    store = request.app[STORE]
    try:
        found = await store.list_incidents("open", None, REPORTS_LIMIT, None, source="report")
        rows = []
        for incident in found:
            assert incident.id is not None
            filed = await store.get_report(incident.id, attachments=False)
            events = await store.timeline(incident.id)
            triaged = any(e.event == "triaged" for e in events)
            rows.append((incident, filed, triaged))
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    rows.sort(key=lambda row: (row[2], -(row[0].id or 0)))
    cfg = request.app[RULES].current
    done = request.query.get("done", "")
    return page(
        request, "reports.html", rows=rows, severities=list(cfg.severities),
        categories=list(cfg.categories),
        people=sorted(cfg.people.items(), key=lambda kv: kv[1].name or kv[0]),
        notice=done if done in ("triage.applied", "triage.already", "triage.conflict") else None,
        nav="reports",
    )  # fmt: skip


@signed_in
async def triage(request: web.Request) -> web.StreamResponse:
    """``POST /ui/reports/{id}/triage`` with ``severity``, ``category``, ``assignee``."""
    form = await request.post()
    cfg = request.app[RULES].current
    pools: dict[str, Collection[str]] = {
        "severity": cfg.severities, "category": cfg.categories, "assignee": cfg.people,
    }  # fmt: skip
    chosen: dict[str, str | None] = {}
    for name, pool in pools.items():
        value = str(form.get(name, "") or "")
        if value and value not in pool:
            return refused(request, 400, "error.bad_form")
        chosen[name] = value or None
    incident_id = parse_id(request.match_info["id"])
    if incident_id is None or not any(chosen.values()):
        return refused(request, 400, "error.bad_form")
    service, by = request.app[SERVICE], request[SESSION].person
    return await perform(
        request,
        lambda: service.triage(incident_id, by, severity=chosen["severity"],
                               category=chosen["category"], assignee=chosen["assignee"]),
        lambda reason: f"/ui/reports?done=triage.{reason.value}",
    )  # fmt: skip


# --- on call ---------------------------------------------------------------------------


@signed_in
async def oncall(request: web.Request) -> web.StreamResponse:
    """``GET /ui/oncall``: per rotation, who is on call now and the next two weeks' shifts,
    overrides marked."""
    cfg = request.app[RULES].current
    now = request.app[CLOCK]()
    end = now + timedelta(days=SCHEDULE_DAYS)
    instead = {
        row.oncall.rotation: row.paged_instead.person
        for row in rotations_now(cfg, now)
        if row.paged_instead is not None
    }
    rotations = [
        (name, rotation, schedule(name, rotation, now, end), instead.get(name))
        for name, rotation in cfg.rotations.items()
    ]
    return page(request, "oncall.html", rotations=rotations, until=end, nav="oncall")


# --- maintenance -----------------------------------------------------------------------


def _local(raw: str, request: web.Request) -> datetime | None:
    """A ``datetime-local`` field's value, in the team's time zone."""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_of(request))
    return moment


async def _maintenance_page(
    request: web.Request, status: int = 200, error: str | None = None, **kept: Any
) -> web.StreamResponse:
    now = request.app[CLOCK]()
    try:
        windows = await request.app[SERVICE].maintenance.windows(now)
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    done = request.query.get("done", "")
    return page(
        request, "maintenance.html", status=status, windows=in_view(windows, now), error=error,
        kept={"matchers": "", "starts": "", "ends": "", "reason": "", **kept},
        notice=done if done in ("created", "ended", "already") else None,
        nav="maintenance", max_reason=MAX_REASON,
    )  # fmt: skip


@signed_in
async def maintenance(request: web.Request) -> web.StreamResponse:
    """``GET /ui/maintenance``: windows in force and to come; a form for a new one."""
    return await _maintenance_page(request)


@signed_in
async def create_window(request: web.Request) -> web.StreamResponse:
    """``POST /ui/maintenance``: matchers (one per line), start, end (team's time), reason."""
    form = await request.post()
    kept = {k: str(form.get(k, "") or "")[:4000] for k in ("matchers", "starts", "ends", "reason")}
    matchers = [line.strip() for line in kept["matchers"].splitlines() if line.strip()]
    starts, ends = _local(kept["starts"], request), _local(kept["ends"], request)
    now = request.app[CLOCK]()
    reason = kept["reason"].strip()
    error: str | None = None
    if not matchers or len(matchers) > MAX_MATCHERS:
        error = "maintenance.error.matchers"
    elif any(not _parses(m) for m in matchers):
        error = "maintenance.error.matcher"
    elif starts is None or ends is None:
        error = "maintenance.error.times"
    elif (why := window_refusal(starts, ends, reason, now)) is not None:
        error = f"maintenance.error.{why}"
    if error is not None or starts is None or ends is None:
        return await _maintenance_page(request, 400, error, **kept)
    try:
        await request.app[SERVICE].maintenance.add(
            matchers, starts, ends, reason, request[SESSION].person
        )
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    return redirect("/ui/maintenance?done=created")


def _parses(text: str) -> bool:
    try:
        parse_matcher(text)
    except ValueError:
        return False
    return True


@signed_in
async def end_window(request: web.Request) -> web.StreamResponse:
    """``POST /ui/maintenance/{id}/end``: an API window ends now."""
    window_id = parse_id(request.match_info["id"])
    if window_id is None:
        return refused(request, 404, "error.no_window")
    service, by = request.app[SERVICE], request[SESSION].person
    return await perform(
        request,
        lambda: service.maintenance.end(window_id, by),
        lambda reason: (
            f"/ui/maintenance?done={'ended' if reason.value == 'applied' else 'already'}"
        ),
        "error.no_window",
    )


# --- dead letters ----------------------------------------------------------------------


@signed_in
async def dead_letters(request: web.Request) -> web.StreamResponse:
    """``GET /ui/deliveries``: deliveries given up on, by incident, each to retry."""
    try:
        dead = await request.app[STORE].deliveries("dead", None, DEAD_LIMIT)
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    by_incident: dict[int | None, list[Any]] = {}
    for delivery in dead:
        by_incident.setdefault(delivery.incident_id, []).append(delivery)
    done = request.query.get("done", "")
    return page(request, "deliveries.html", groups=list(by_incident.items()), nav="deliveries",
                notice=done if done in ("retry.applied", "retry.already", "retry.conflict")
                else None)  # fmt: skip


@signed_in
async def retry_delivery(request: web.Request) -> web.StreamResponse:
    """``POST /ui/deliveries/{id}/retry``: one dead letter sent again."""
    delivery_id = parse_id(request.match_info["id"])
    if delivery_id is None:
        return refused(request, 404, "error.no_delivery")
    actions, by = request.app[SERVICE].actions, request[SESSION].person
    return await perform(
        request,
        lambda: actions.retry_delivery(delivery_id, by),
        lambda reason: f"/ui/deliveries?done=retry.{reason.value}",
        "error.no_delivery",
    )


# --- route test ------------------------------------------------------------------------


@signed_in
async def route_test(request: web.Request) -> web.StreamResponse:
    """``GET /ui/route-test`` (the form) and ``POST`` (labels and a time: who is paged)."""
    if request.method != "POST":
        return page(request, "route_test.html", result=None, error=None, labels="", at="",
                    nav="route-test")  # fmt: skip
    form = await request.post()
    text = str(form.get("labels", "") or "")[:8000]
    at_raw = str(form.get("at", "") or "")
    labels: dict[str, str] = {}
    error = None
    for line in (x.strip() for x in text.splitlines()):
        if not line:
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            error = "route.error.line"
            break
        labels[name.strip()] = value.strip().strip('"')
    at = _local(at_raw, request) if at_raw.strip() else request.app[CLOCK]()
    if error is None and (not labels or len(labels) > MAX_LABELS):
        error = "route.error.none"
    if error is None and at is None:
        error = "route.error.time"
    result = None
    if error is None and at is not None:
        result = route_report(request.app[RULES].current, labels, at)
    return page(request, "route_test.html", status=400 if error else 200, result=result,
                error=error, labels=text, at=at_raw, nav="route-test")  # fmt: skip


def routes(app: web.Application) -> None:
    app.router.add_get("/ui/reports", reports)
    app.router.add_post("/ui/reports/{id}/triage", triage)
    app.router.add_get("/ui/oncall", oncall)
    app.router.add_get("/ui/maintenance", maintenance)
    app.router.add_post("/ui/maintenance", create_window)
    app.router.add_post("/ui/maintenance/{id}/end", end_window)
    app.router.add_get("/ui/deliveries", dead_letters)
    app.router.add_post("/ui/deliveries/{id}/retry", retry_delivery)
    app.router.add_get("/ui/route-test", route_test)
    app.router.add_post("/ui/route-test", route_test)
