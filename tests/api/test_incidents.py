"""Incident lifecycle through the HTTP API: join, resolve, reopen, upgrade, ack, resolve by hand."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import API, AUTH, ClientFactory
from tests.helpers import FakeClock, alert, lifecycle, metric, resolved, webhook


async def post(client: TestClient[Any, Any], *alerts: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/webhook", json=webhook(*alerts), headers=AUTH)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def incidents(client: TestClient[Any, Any], query: str = "") -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/incidents{query}", headers=API)
    assert resp.status == 200
    found: list[dict[str, Any]] = (await resp.json())["incidents"]
    return found


async def detail(client: TestClient[Any, Any], incident_id: int) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=API)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_alerts_join_and_incident_resolves_when_all_resolve(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client()
    a, b = alert(instance="a"), alert(instance="b")
    await post(client, a)
    clock.advance(minutes=1)
    await post(client, a, b)
    [inc] = await incidents(client)
    assert {x["fingerprint"] for x in inc["alerts"]} == {a["fingerprint"], b["fingerprint"]}
    clock.advance(minutes=1)
    await post(client, resolved(a, clock.now), b)
    assert (await incidents(client))[0]["status"] == "triggered"  # b still fires
    clock.advance(minutes=1)
    await post(client, resolved(a, clock.now), resolved(b, clock.now))
    [inc] = await incidents(client)
    assert inc["status"] == "resolved"
    assert inc["resolved_at"] == "2026-11-26T01:03:00Z"
    assert {x["status"] for x in inc["alerts"]} == {"resolved"}
    events = lifecycle((await detail(client, inc["id"]))["timeline"])
    assert events == ["opened", "alerts_joined", "alerts_resolved", "alerts_resolved", "resolved"]


async def test_refire_inside_window_reopens_after_window_opens_new(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client()
    a = alert()
    await post(client, a)
    clock.advance(minutes=5)
    await post(client, resolved(a, clock.now))
    # A late copy of the old firing notification (HA peer) must not reopen it.
    await post(client, a)
    assert (await incidents(client))[0]["status"] == "resolved"
    clock.advance(hours=2)
    again = alert(starts=clock.now)
    await post(client, again)
    [inc] = await incidents(client)
    assert inc["status"] == "triggered" and inc["resolved_at"] is None
    timeline = lifecycle((await detail(client, inc["id"]))["timeline"])
    assert timeline[-1] == "reopened"
    clock.advance(minutes=1)
    await post(client, resolved(again, clock.now))
    clock.advance(hours=25)  # past jira.reopen_window (24h)
    await post(client, alert(starts=clock.now))
    found = await incidents(client)
    assert [i["status"] for i in found] == ["triggered", "resolved"]
    assert found[0]["id"] != found[1]["id"] and found[0]["key"] == found[1]["key"]


async def test_severity_is_raised_never_lowered(make_client: ClientFactory) -> None:
    client = await make_client()
    warn = alert(alertname="HighResponseTime", service="order-api", severity="warning", pod="1")
    crit = alert(alertname="HighResponseTime", service="order-api", severity="critical", pod="2")
    await post(client, warn)
    assert (await incidents(client))[0]["severity"] == "P2"
    await post(client, crit)
    [inc] = await incidents(client)
    assert inc["severity"] == "P1"
    await post(client, alert(alertname="HighResponseTime", service="order-api", pod="3"))
    assert (await incidents(client))[0]["severity"] == "P1"
    d = await detail(client, inc["id"])
    raised = [e for e in d["timeline"] if e["event"] == "severity_raised"]
    assert raised == [{"at": raised[0]["at"], "event": "severity_raised", "from": "P2", "to": "P1"}]
    assert sum(x["kind"] == "incident.severity_raised" for x in d["deliveries"]) == 2


async def test_ack_records_who_and_when_once_and_feeds_histogram(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client()
    await post(client, alert())
    [inc] = await incidents(client)
    clock.advance(minutes=4)
    resp = await client.post(f"/api/v1/incidents/{inc['id']}/ack", json={"by": "kim"}, headers=API)
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "kim"
    assert body["changed"] is True
    clock.advance(minutes=1)
    again = await client.post(
        f"/api/v1/incidents/{inc['id']}/ack", json={"by": "choi"}, headers=API
    )
    assert again.status == 200
    second = await again.json()
    assert second["changed"] is False and second["acknowledged_by"] == "kim"
    assert second["acknowledged_at"] == body["acknowledged_at"]
    metrics = await (await client.get("/metrics")).text()
    labels = {"severity": "P1", "category": "api"}
    assert metric(metrics, "receiver_alert_to_ack_seconds_count", **labels) == 1
    # startsAt is T0 (the alert started when the clock did); acked 4 minutes later.
    assert metric(metrics, "receiver_alert_to_ack_seconds_sum", **labels) == pytest.approx(240)
    assert metric(metrics, "receiver_alert_to_ack_seconds_bucket", le="300.0", **labels) == 1
    assert metric(metrics, "receiver_alert_to_ack_seconds_bucket", le="120.0", **labels) == 0
    assert metric(metrics, "receiver_incidents_open", severity="P1", status="acknowledged") == 1
    events = lifecycle((await detail(client, inc["id"]))["timeline"])
    assert events == ["opened", "acknowledged"]


async def test_resolve_by_hand_then_ack_conflicts(make_client: ClientFactory) -> None:
    client = await make_client()
    await post(client, alert())
    [inc] = await incidents(client)
    url = f"/api/v1/incidents/{inc['id']}"
    resp = await client.post(f"{url}/resolve", json={"by": "lee"}, headers=API)
    assert resp.status == 200
    assert (await resp.json())["resolved_by"] == "lee"
    assert (await client.post(f"{url}/ack", json={"by": "kim"}, headers=API)).status == 409
    again = await client.post(f"{url}/resolve", json={"by": "lee"}, headers=API)
    assert again.status == 200 and (await again.json())["changed"] is False
    # Alertmanager keeps sending the still-firing alert: nothing reopens.
    await post(client, alert())
    assert (await incidents(client))[0]["status"] == "resolved"


ACTION_ERRORS = [
    ("no token", "/api/v1/incidents/1/ack", {}, {"by": "kim"}, 401),
    ("wrong token", "/api/v1/incidents/1/ack", {"Authorization": "Bearer x"}, {"by": "kim"}, 401),
    ("unknown incident", "/api/v1/incidents/999/ack", API, {"by": "kim"}, 404),
    ("id not a number", "/api/v1/incidents/abc/ack", API, {"by": "kim"}, 400),
    ("unknown person", "/api/v1/incidents/1/ack", API, {"by": "nobody"}, 400),
    ("by missing", "/api/v1/incidents/1/resolve", API, {}, 400),
    ("by not a string", "/api/v1/incidents/1/resolve", API, {"by": 7}, 400),
    ("body not an object", "/api/v1/incidents/1/resolve", API, ["kim"], 400),
]


@pytest.mark.parametrize(
    ("name", "path", "headers", "body", "status"), ACTION_ERRORS, ids=[c[0] for c in ACTION_ERRORS]
)
async def test_action_errors_change_nothing(
    make_client: ClientFactory,
    name: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    status: int,
) -> None:
    client = await make_client()
    await post(client, alert())
    resp = await client.post(path, json=body, headers=headers)
    assert resp.status == status
    assert "error" in await resp.json()
    [inc] = await incidents(client)
    assert inc["status"] == "triggered"
    assert lifecycle((await detail(client, inc["id"]))["timeline"]) == ["opened"]


async def test_list_filters_and_paging(make_client: ClientFactory) -> None:
    client = await make_client()
    await post(client, alert(alertname="KISTokenRefreshFailed"))
    await post(client, alert(alertname="DatabaseSlowQueries", database="orders"))
    await post(client, alert(alertname="ServiceDown", service="order-api"))
    found = await incidents(client)
    assert [i["severity"] for i in found] == ["P0", "P2", "P1"]  # newest first
    assert [i["severity"] for i in await incidents(client, "?severity=P2")] == ["P2"]
    assert len(await incidents(client, "?status=resolved")) == 0
    page = await (await client.get("/api/v1/incidents?limit=2", headers=API)).json()
    assert len(page["incidents"]) == 2
    rest = await incidents(client, f"?limit=2&before={page['next_before']}")
    assert [i["severity"] for i in rest] == ["P1"]
    for query in ("?status=opened", "?severity=P9", "?limit=0", "?limit=x"):
        assert (await client.get(f"/api/v1/incidents{query}", headers=API)).status == 400
    assert (await client.get("/api/v1/incidents")).status == 401
    assert (await client.get("/api/v1/incidents/12345", headers=API)).status == 404


async def test_health_and_readiness(make_client: ClientFactory) -> None:
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert "16 rules" in (await resp.json())["rules"]


async def test_late_copy_of_an_unseen_refire_does_not_reopen(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    """Resolved and fired again within one group interval: Alertmanager only ever sends the
    re-fire as a repeat, then its resolve; a late copy of that re-fire is a duplicate."""
    client = await make_client()
    first = alert()
    await post(client, first)
    clock.advance(minutes=5)
    refire = alert(starts=clock.now)  # same fingerprint, later startsAt
    await post(client, refire)  # still firing as far as we know: a repeat
    clock.advance(minutes=5)
    await post(client, resolved(refire, clock.now))
    assert (await incidents(client))[0]["status"] == "resolved"
    await post(client, refire)  # the HA peer's late copy
    [inc] = await incidents(client)
    assert inc["status"] == "resolved"
    assert "reopened" not in lifecycle((await detail(client, inc["id"]))["timeline"])
