"""Incident decisions, table-driven over pure functions: no store, no clock but the one given."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from receiver.domain.incidents import (
    Policy,
    Reason,
    decide_ack,
    decide_batch,
    decide_link,
    decide_resolve,
    decide_resolved_with,
    decide_triage,
)
from receiver.domain.model import Alert, AlertRecord, AlertStatus, Incident, Route, Status

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
POLICY = Policy(reopen_window=timedelta(hours=24), rank=lambda s: ["P0", "P1", "P2", "P3"].index(s))
KEY = 'rule{alertname="A",service="s"}'


def route(severity: str = "P2") -> Route:
    return Route(
        rule="rule",
        severity=severity,
        category="api",
        team="backend",
        key=KEY,
        group_labels={"alertname": "A", "service": "s"},
        jira_project="OPS",
        jira_priority="Medium",
        issue_type="Incident",
    )


def firing(fp: str, starts: datetime = T0) -> Alert:
    return Alert(fp, AlertStatus.FIRING, {"alertname": "A", "service": "s"}, {}, starts, None)


def resolved(fp: str, starts: datetime = T0) -> Alert:
    return Alert(fp, AlertStatus.RESOLVED, {"alertname": "A"}, {}, starts, NOW)


def record(fp: str, status: AlertStatus = AlertStatus.FIRING, starts: datetime = T0) -> AlertRecord:
    return AlertRecord(fp, status, "P2", {"alertname": "A"}, {}, starts, None, "", T0, T0)


def incident(status: Status = Status.TRIGGERED, **kw: object) -> Incident:
    base = Incident(
        id=7,
        key=KEY,
        rule="rule",
        severity="P2",
        category="api",
        team="backend",
        status=status,
        summary="A",
        group_labels={},
        opened_at=T0,
        triggered_at=T0,
        first_starts_at=T0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


CASES = [
    # name, latest, known, firing, batch, events per change, notifications, dups, statuses
    (
        "first alert opens",
        None,
        {},
        0,
        [(firing("a"), route())],
        [["opened"]],
        [["incident.opened"]],
        0,
        ["triggered"],
    ),
    (
        "new alert joins open incident",
        incident(),
        {},
        1,
        [(firing("b"), route())],
        [["alerts_joined"]],
        [["incident.alerts_joined"]],
        0,
        ["triggered"],
    ),
    (
        "same firing alert again is a duplicate",
        incident(),
        {"a": record("a")},
        1,
        [(firing("a"), route())],
        [],
        [],
        1,
        [],
    ),
    (
        "last alert resolving resolves",
        incident(),
        {"a": record("a")},
        1,
        [(resolved("a"), route())],
        [["alerts_resolved", "resolved"]],
        [["incident.resolved"]],
        0,
        ["resolved"],
    ),
    (
        "one of two resolving keeps it open",
        incident(),
        {"a": record("a")},
        2,
        [(resolved("a"), route())],
        [["alerts_resolved"]],
        [[]],
        0,
        ["triggered"],
    ),
    (
        "resolved twice is a duplicate",
        incident(Status.RESOLVED, resolved_at=NOW),
        {"a": record("a", AlertStatus.RESOLVED)},
        0,
        [(resolved("a"), route())],
        [],
        [],
        1,
        [],
    ),
    (
        "resolved for an alert never seen changes nothing",
        incident(),
        {},
        1,
        [(resolved("zz"), route())],
        [],
        [],
        0,
        [],
    ),
    (
        "late firing copy after resolve does not reopen",
        incident(Status.RESOLVED, resolved_at=NOW),
        {"a": record("a", AlertStatus.RESOLVED)},
        0,
        [(firing("a"), route())],
        [],
        [],
        1,
        [],
    ),
    (
        "re-fire inside the window reopens",
        incident(Status.RESOLVED, resolved_at=NOW - timedelta(hours=1)),
        {"a": record("a", AlertStatus.RESOLVED)},
        0,
        [(firing("a", starts=NOW), route())],
        [["reopened"]],
        [["incident.reopened"]],
        0,
        ["triggered"],
    ),
    (
        "re-fire after the window opens a new incident",
        incident(Status.RESOLVED, resolved_at=NOW - timedelta(hours=25)),
        {"a": record("a", AlertStatus.RESOLVED)},
        0,
        [(firing("a", starts=NOW), route())],
        [["opened"]],
        [["incident.opened"]],
        0,
        ["triggered"],
    ),
    (
        "still firing after a manual resolve stays resolved",
        incident(Status.RESOLVED, resolved_at=NOW, resolved_by="lee"),
        {"a": record("a")},
        1,
        [(firing("a"), route())],
        [],
        [],
        1,
        [],
    ),
    (
        "higher severity raises",
        incident(),
        {},
        1,
        [(firing("b"), route("P1"))],
        [["alerts_joined", "severity_raised"]],
        [["incident.alerts_joined", "incident.severity_raised"]],
        0,
        ["triggered"],
    ),
    (
        "lower severity never lowers",
        incident(severity="P1"),
        {},
        1,
        [(firing("b"), route("P3"))],
        [["alerts_joined"]],
        [["incident.alerts_joined"]],
        0,
        ["triggered"],
    ),
    (
        "acknowledged incident stays acknowledged when alerts join",
        incident(Status.ACKNOWLEDGED, acknowledged_by="kim", acknowledged_at=T0),
        {},
        1,
        [(firing("b"), route())],
        [["alerts_joined"]],
        [["incident.alerts_joined"]],
        0,
        ["acknowledged"],
    ),
]


@pytest.mark.parametrize(
    ("name", "latest", "known", "count", "batch", "events", "notes", "dups", "statuses"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_decide_batch(
    name: str,
    latest: Incident | None,
    known: dict[str, AlertRecord],
    count: int,
    batch: list[tuple[Alert, Route]],
    events: list[list[str]],
    notes: list[list[str]],
    dups: int,
    statuses: list[str],
) -> None:
    decision = decide_batch(latest, known, count, batch, NOW, POLICY)
    assert [[e.event for e in c.events] for c in decision.changes] == events
    assert [list(c.notifications) for c in decision.changes] == notes
    assert [c.incident.status.value for c in decision.changes] == statuses
    assert decision.duplicates == dups


def test_decisions_never_mutate_their_input() -> None:
    latest = incident()
    before = replace(latest)
    decide_batch(latest, {}, 1, [(firing("b"), route("P0"))], NOW, POLICY)
    decide_ack(latest, "kim", NOW)
    assert latest == before


@pytest.mark.parametrize(
    ("latest", "known", "count", "batch", "firing_after"),
    [
        (None, {}, 0, [(firing("a"), route()), (firing("b"), route())], [2]),
        (incident(), {}, 1, [(firing("b"), route())], [2]),
        (incident(), {"a": record("a")}, 2, [(resolved("a"), route())], [1]),
        (incident(), {"a": record("a")}, 1, [(resolved("a"), route())], [0]),
        # a duplicate of a firing alert counts once
        (incident(), {"a": record("a")}, 1, [(firing("a"), route()), (firing("b"), route())],
         [2]),
    ],
)  # fmt: skip
def test_decisions_count_the_firing_alerts(
    latest: Incident | None,
    known: dict[str, AlertRecord],
    count: int,
    batch: list[tuple[Alert, Route]],
    firing_after: list[int],
) -> None:
    changes = decide_batch(latest, known, count, batch, NOW, POLICY).changes
    assert [c.incident.firing_alerts for c in changes] == firing_after


def test_new_incident_takes_most_severe_and_earliest_start() -> None:
    batch = [
        (firing("a", starts=T0 + timedelta(minutes=2)), route("P2")),
        (firing("b", starts=T0), route("P1")),
    ]
    [change] = decide_batch(None, {}, 0, batch, NOW, POLICY).changes
    assert change.is_new and change.incident.severity == "P1"
    assert change.incident.first_starts_at == T0
    assert change.incident.opened_at == NOW
    assert {r.fingerprint for r in change.alerts} == {"a", "b"}


def test_reopen_clears_ack_and_resolution_and_restarts_the_clock() -> None:
    latest = incident(
        Status.RESOLVED,
        acknowledged_at=T0,
        acknowledged_by="kim",
        resolved_at=NOW - timedelta(minutes=30),
        resolved_by="lee",
    )
    refire = firing("a", starts=NOW - timedelta(minutes=1))
    [change] = decide_batch(latest, {}, 0, [(refire, route())], NOW, POLICY).changes
    inc = change.incident
    assert (inc.status, inc.acknowledged_by, inc.resolved_at) == (Status.TRIGGERED, None, None)
    assert inc.triggered_at == NOW and inc.first_starts_at == refire.starts_at
    assert inc.id == latest.id


def test_resolved_old_and_fresh_new_in_one_batch_touch_two_incidents() -> None:
    latest = incident(Status.RESOLVED, resolved_at=NOW - timedelta(days=3), resolved_by="lee")
    known = {"a": record("a")}  # still firing after the manual resolve
    batch = [(resolved("a"), route()), (firing("b", starts=NOW), route())]
    old, new = decide_batch(latest, known, 1, batch, NOW, POLICY).changes
    assert old.incident.id == 7 and [e.event for e in old.events] == ["alerts_resolved"]
    assert new.is_new and [r.fingerprint for r in new.alerts] == ["b"]


ACK_CASES = [
    (Status.TRIGGERED, Reason.APPLIED, "acknowledged"),
    (Status.ACKNOWLEDGED, Reason.ALREADY, None),
    (Status.RESOLVED, Reason.CONFLICT, None),
]


@pytest.mark.parametrize(("status", "reason", "event"), ACK_CASES)
def test_ack(status: Status, reason: Reason, event: str | None) -> None:
    got, change = decide_ack(incident(status), "kim", NOW)
    assert got is reason
    assert (change.events[0].event if change else None) == event
    if change:
        assert change.incident.acknowledged_by == "kim"
        assert change.incident.acknowledged_at == NOW


RESOLVE_CASES = [
    (Status.TRIGGERED, Reason.APPLIED),
    (Status.ACKNOWLEDGED, Reason.APPLIED),
    (Status.RESOLVED, Reason.ALREADY),
]


@pytest.mark.parametrize(("status", "reason"), RESOLVE_CASES)
def test_resolve_by_hand(status: Status, reason: Reason) -> None:
    got, change = decide_resolve(incident(status), "lee", NOW)
    assert got is reason
    if change:
        assert change.incident.status is Status.RESOLVED
        assert change.incident.resolved_by == "lee"
        assert change.notifications == ("incident.resolved",)


@pytest.mark.parametrize(
    ("annotation", "rule_summary", "group", "expected"),
    [
        ("order-api is down", None, {"service": "order-api"}, "order-api is down"),
        ("Errors high", None, {"service": "order-api"}, "Errors high — order-api"),
        (None, "KIS token refresh failing", {"service": "kis-gateway"},
         "KIS token refresh failing — kis-gateway"),
        (None, None, {"alertname": "X", "service": "a"}, "X — a"),
    ],
)  # fmt: skip
def test_summary_names_where_it_fires_once(
    annotation: str | None, rule_summary: str | None, group: dict[str, str], expected: str
) -> None:
    """The alert's summary, else the rule's, then the group's label values it lacks."""
    labels = {"alertname": "X", **group}
    notes = {"summary": annotation} if annotation else {}
    fired = Alert("fp", AlertStatus.FIRING, labels, notes, T0, None)
    routed = replace(route(), summary=rule_summary, group_labels=group)
    [change] = decide_batch(None, {}, 0, [(fired, routed)], T0, POLICY).changes
    assert change.incident.summary == expected


def report_incident(**kw: object) -> Incident:
    return replace(incident(**kw), source="report", key="report:7")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("made", "changes", "reason", "data"),
    [
        (report_incident(), {"severity": "P1"}, Reason.APPLIED, {"severity": ["P2", "P1"]}),
        (report_incident(), {"category": "ui", "team": "frontend"}, Reason.APPLIED,
         {"category": ["api", "ui"]}),
        (report_incident(), {"assignee": "kim"}, Reason.APPLIED, {"assignee": "kim"}),
        (report_incident(), {"severity": "P2", "category": "api"}, Reason.ALREADY, None),
        (report_incident(status=Status.RESOLVED), {"severity": "P1"}, Reason.CONFLICT, None),
        (incident(), {"severity": "P1"}, Reason.CONFLICT, None),  # an alert's rule decides
    ],
)  # fmt: skip
def test_decide_triage(
    made: Incident, changes: dict[str, str], reason: Reason, data: dict[str, object] | None
) -> None:
    got, change = decide_triage(made, "lee", NOW, **changes)
    assert got is reason
    if data is None:
        assert change is None
        return
    assert change is not None
    [event] = change.events
    assert event.event == "triaged" and event.data == {"by": "lee", **data}
    assert change.notifications == ("incident.triaged",)
    moved = "severity" in data or "category" in data
    assert (change.incident.triggered_at == NOW) is moved  # the new policy runs from now
    if "category" in data:
        assert change.incident.team == changes["team"]


@pytest.mark.parametrize(
    ("made", "target", "linked_to", "reason"),
    [
        (report_incident(), incident(id=9), None, Reason.APPLIED),
        (report_incident(), incident(id=9), 3, Reason.APPLIED),  # moved to another
        (report_incident(), incident(id=9), 9, Reason.ALREADY),
        (report_incident(), report_incident(), None, Reason.CONFLICT),  # itself
        (incident(), incident(id=9), None, Reason.CONFLICT),  # alerts do not link
        (report_incident(status=Status.RESOLVED), incident(id=9), None, Reason.CONFLICT),
        (report_incident(), incident(Status.RESOLVED, id=9), None, Reason.CONFLICT),
    ],
)
def test_decide_link(
    made: Incident, target: Incident, linked_to: int | None, reason: Reason
) -> None:
    got, change = decide_link(made, target, linked_to, "lee", NOW)
    assert got is reason
    assert (change is not None) is (reason is Reason.APPLIED)
    if change is not None:
        assert change.incident == made  # nothing of it changes but its timeline
        assert [(e.event, e.data) for e in change.events] == [("linked", {"to": 9, "by": "lee"})]


def test_a_linked_incident_resolves_with_its_target() -> None:
    change = decide_resolved_with(report_incident(), 9, NOW)
    assert (change.incident.status, change.incident.resolved_at) == (Status.RESOLVED, NOW)
    assert change.incident.resolved_by is None
    assert change.events[0].data["with"] == 9
    assert change.notifications == ("incident.resolved",)
