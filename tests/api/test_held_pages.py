"""Pages held for business hours are visible where people look (the timeline, the incident
JSON, the JIRA issue) with when they will go out, and go out then; holidays are not business
days (the shipped rotations know Korea's)."""

from __future__ import annotations

import asyncio
from datetime import datetime
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
CHRISTMAS_EVE_23H = datetime.fromisoformat("2025-12-24T23:00:00+09:00")
BOXING_DAY_9H = "2025-12-26T09:00:00+09:00"


async def test_a_p2_raised_on_christmas_eve_night_is_paged_on_the_26th(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    clock.now = CHRISTMAS_EVE_23H
    client = await make_client(**live(slack, jira))
    errors = alert(starts=clock.now, alertname="FrontendErrorRate", service="web")  # P2, ui
    resp = await client.post("/webhook", json=webhook(errors), headers=AUTH)
    [incident_id] = (await resp.json())["incidents"]
    url = f"/api/v1/incidents/{incident_id}"
    view = await (await client.get(url, headers=API)).json()
    assert view["severity"] == "P2" and view["team"] == "frontend"
    assert view["pages_held_until"] == BOXING_DAY_9H  # not Christmas Day, a holiday in Korea
    [held] = [e for e in view["timeline"] if e["event"] == "pages_held"]
    assert held["until"] == BOXING_DAY_9H
    text = await (await client.get(f"{url}/timeline?format=text", headers=API)).text()
    assert "Pages held for business hours until 2025-12-26 09:00 KST" in text
    await wait_for(lambda: len(jira.issues) == 1)
    [issue] = jira.issues.values()
    assert (
        "*Paging:* held for business hours until 2025-12-26 09:00 KST"
        in (issue["fields"]["description"])
    )
    on_call = {p.slack_id for p in CFG.people.values()}

    def paged() -> list[str]:
        return [u for u in on_call if u and slack.dms_to(u)]

    clock.now = datetime.fromisoformat("2025-12-25T10:00:00+09:00")  # Christmas morning
    await asyncio.sleep(0.3)
    assert paged() == []
    clock.now = datetime.fromisoformat("2025-12-26T09:00:01+09:00")
    await wait_for(lambda: len(paged()) == 1)
    view = await (await client.get(url, headers=API)).json()
    assert view["pages_held_until"] is None  # they went out
    assert any(e["event"] == "paged" for e in view["timeline"])


async def test_a_page_that_may_go_out_now_is_not_held(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    clock.now = CHRISTMAS_EVE_23H
    client = await make_client()
    down = alert(starts=clock.now, alertname="ServiceDown", service="order-api")  # P0: always
    [incident_id] = (
        await (await client.post("/webhook", json=webhook(down), headers=AUTH)).json()
    )["incidents"]
    view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    assert view["pages_held_until"] is None
    assert not [e for e in view["timeline"] if e["event"] == "pages_held"]


async def test_a_hold_ends_when_the_severity_is_raised_to_one_that_pages_at_once(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    clock.now = CHRISTMAS_EVE_23H
    client = await make_client()
    slow: dict[str, Any] = {"alertname": "HighResponseTime", "service": "order-api"}
    first = alert(starts=clock.now, severity="warning", instance="a", **slow)  # P2: held
    resp = await client.post("/webhook", json=webhook(first), headers=AUTH)
    [incident_id] = (await resp.json())["incidents"]
    url = f"/api/v1/incidents/{incident_id}"
    assert (await (await client.get(url, headers=API)).json())["pages_held_until"] == (
        BOXING_DAY_9H
    )
    clock.advance(minutes=5)
    worse = alert(starts=clock.now, severity="critical", instance="b", **slow)  # now a P1
    assert (await client.post("/webhook", json=webhook(worse), headers=AUTH)).status == 200
    view = await (await client.get(url, headers=API)).json()
    assert view["severity"] == "P1" and view["pages_held_until"] is None
