"""Maintenance windows through the whole app with fake Slack and JIRA over HTTP: a P1
during a window pages and tells nobody, then pages its on-call (and is announced) when the
window ends while it is still open; a P0 during the same window pages at once; a window
ended early through the API releases what it held at once; bad windows are refused."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from receiver.config import load_rules
from tests.api.test_reports import live
from tests.api.test_slack_notify import jira as jira  # the fixtures, re-exported
from tests.api.test_slack_notify import slack as slack
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, FakeClock, alert, wait_for, webhook

CFG = load_rules(SHIPPED_RULES)
T0 = datetime.fromisoformat("2026-11-26T10:00:00+09:00")  # a Thursday morning in Seoul
KIS = ['service="kis-gateway"']
HOUR = timedelta(hours=1)


async def _window(client: Any, starts: datetime, ends: datetime, **extra: Any) -> int:
    body = {"matchers": KIS, "starts_at": starts.isoformat(), "ends_at": ends.isoformat(),
            "reason": "KIS gateway deploy", "by": "kim", **extra}  # fmt: skip
    resp = await client.post("/api/v1/maintenance", json=body, headers=API)
    assert resp.status == 201, await resp.text()
    made: dict[str, Any] = await resp.json()
    assert made["name"] == f"api-{made['id']}"
    return int(made["id"])


async def _incident(client: Any, firing: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/webhook", json=webhook(firing), headers=AUTH)
    [incident_id] = (await resp.json())["incidents"]
    view: dict[str, Any] = await (
        await client.get(f"/api/v1/incidents/{incident_id}", headers=API)
    ).json()
    return view


async def test_a_p1_in_a_window_is_paged_when_it_ends_and_a_p0_pages_at_once(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client(**live(slack, jira))
    window = await _window(client, T0 - timedelta(minutes=1), T0 + HOUR)
    listed = await (await client.get("/api/v1/maintenance", headers=API)).json()
    [shown] = listed["windows"]
    assert shown["active"] is True and shown["source"] == "api" and shown["matchers"] == KIS
    assert shown["ends_at"] == "2026-11-26T02:00:00Z" and shown["by"] == "kim"

    token = await _incident(client, alert(starts=T0))  # P1 api, backend: kim on call
    assert token["maintenance"] == f"api-{window}"
    assert token["pages_held_until"] == "2026-11-26T02:00:00+00:00"
    [note] = [e for e in token["timeline"] if e["event"] == "maintenance"]
    assert note["held"] is True and note["reason"] == "KIS gateway deploy"
    down = await _incident(client, alert(starts=T0, alertname="ServiceDown",
                                         service="kis-gateway"))  # fmt: skip
    assert down["severity"] == "P0" and down["maintenance"] is None  # P0 ignores maintenance
    assert [e["held"] for e in down["timeline"] if e["event"] == "maintenance"] == [False]

    await wait_for(lambda: bool(slack.dms_to("U0HAN")))  # the P0's on-call, at once
    await wait_for(lambda: len(jira.issues) == 2)
    await asyncio.sleep(0.5)
    assert slack.dms_to("U0KIM") == []  # the P1 pages nobody during the window
    announced = [m["text"] for m in slack.posted_to(CFG.channels.announce)]
    assert len(announced) == 1  # the P0's; the P1 tells testers nothing
    [issue] = [i for i in jira.issues.values() if "severity-p1" in i["fields"]["labels"]]
    assert any("During maintenance window api-" in c["body"] and "nobody paged or told"
               in c["body"] for c in issue["comments"])  # fmt: skip

    clock.now = T0 + HOUR + timedelta(seconds=1)  # the window is over, the P1 still open
    await wait_for(lambda: bool(slack.dms_to("U0KIM")))
    await wait_for(lambda: len(slack.posted_to(CFG.channels.announce)) == 2)
    url = f"/api/v1/incidents/{token['id']}"
    view = await (await client.get(url, headers=API)).json()
    assert view["maintenance"] is None and view["pages_held_until"] is None
    events = [e["event"] for e in view["timeline"]]
    assert events.index("maintenance_over") < events.index("paged")
    # the ack clock started at the release: no breach for the hour held
    assert "ack_sla_breached" not in events and view["phase_deadlines"]["ack"] == (
        "2026-11-26T02:30:01Z"
    )
    await wait_for(lambda: any("still open, paging now" in c["body"] for c in
                               jira.issues[view["jira_key"]]["comments"]))  # fmt: skip
    listed = await (await client.get("/api/v1/maintenance", headers=API)).json()
    assert listed["windows"] == []
    earlier = T0.isoformat().replace("+", "%2B")
    back_then = await (await client.get(f"/api/v1/maintenance?at={earlier}", headers=API)).json()
    assert [w["active"] for w in back_then["windows"]] == [True]


async def test_a_window_ended_early_pages_what_it_held_at_once(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client(slack_token="xoxb-receiver", slack_api_url=slack.url)
    window = await _window(client, T0, T0 + 3 * HOUR)
    token = await _incident(client, alert(starts=T0))
    assert token["maintenance"] == f"api-{window}"
    clock.now = T0 + timedelta(minutes=20)
    resp = await client.delete(f"/api/v1/maintenance/{window}", json={"by": "lee"}, headers=API)
    assert resp.status == 200
    assert await resp.json() == {"id": window, "name": f"api-{window}", "changed": True,
                                 "ended_at": "2026-11-26T01:20:00Z"}  # fmt: skip
    await wait_for(lambda: bool(slack.dms_to("U0KIM")))
    view = await (await client.get(f"/api/v1/incidents/{token['id']}", headers=API)).json()
    [over] = [e for e in view["timeline"] if e["event"] == "maintenance_over"]
    assert over["ended_by"] == "lee"
    again = await client.delete(f"/api/v1/maintenance/{window}", json={"by": "lee"}, headers=API)
    assert (await again.json())["changed"] is False
    later = await _incident(client, alert(starts=clock.now, service="kis-gateway",
                                          alertname="KISTokenExpiringSoon"))  # fmt: skip
    assert later["maintenance"] is None  # the window no longer applies
    clock.now = T0 + 3 * HOUR + timedelta(seconds=1)  # its old end passes: no second release
    await asyncio.sleep(0.5)
    view = await (await client.get(f"/api/v1/incidents/{token['id']}", headers=API)).json()
    events = [e["event"] for e in view["timeline"]]
    assert events.count("maintenance_over") == 1 and events.count("paged") == 1
    for path, status in (("/api/v1/maintenance/999", 404), ("/api/v1/maintenance/kis-weekly", 404)):
        resp = await client.delete(path, json={"by": "lee"}, headers=API)
        assert resp.status == status


async def test_bad_windows_are_refused_with_the_field_named(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client()
    good = {"matchers": KIS, "starts_at": "2026-11-26T10:00:00+09:00",
            "ends_at": "2026-11-26T12:00:00+09:00", "reason": "deploy", "by": "kim"}  # fmt: skip
    cases: list[tuple[dict[str, Any], str]] = [
        ({"matchers": []}, "matchers"),
        ({"matchers": ['service=~"("']}, "matchers[0]"),
        ({"matchers": [7]}, "matchers[0]"),
        ({"starts_at": "2026-11-26T10:00:00"}, "starts_at"),  # no offset
        ({"ends_at": "tomorrow"}, "ends_at"),
        ({"ends_at": "2026-11-26T09:00:00+09:00"}, "ends_at"),  # before the start
        ({"starts_at": "2026-11-25T08:00:00+09:00", "ends_at": "2026-11-25T09:00:00+09:00"},
         "ends_at"),  # wholly past
        ({"ends_at": "2027-01-26T10:00:00+09:00"}, "ends_at"),  # over 31 days
        ({"reason": ""}, "reason"),
        ({"by": "nobody"}, "by"),
    ]  # fmt: skip
    for change, field in cases:
        resp = await client.post("/api/v1/maintenance", json={**good, **change}, headers=API)
        assert resp.status == 400, change
        assert (await resp.json())["field"] == field, change
    assert (await client.post("/api/v1/maintenance", json=good)).status == 401
    bad_at = await client.get("/api/v1/maintenance?at=soon", headers=API)
    assert bad_at.status == 400
    assert (await (await client.get("/api/v1/maintenance", headers=API)).json())["windows"] == []
