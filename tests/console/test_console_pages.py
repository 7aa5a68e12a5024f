"""The console's pages and forms over HTTP: what each shows, and that each form acts as the
signed-in person, on the timeline with their name."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, cast

from pydantic import SecretStr

from receiver.api.keys import CLOCK, STORE
from receiver.console.session import LANG_COOKIE
from tests.conftest import API, AUTH, ClientFactory
from tests.console.helpers import Client, signed_in
from tests.helpers import FakeClock, alert, webhook

SECRET = "s" * 40


async def _fire(client: Client, **labels: str) -> None:
    body = webhook(alert(**cast(dict[str, Any], labels)))
    answer = await client.post("/webhook", json=body, headers=AUTH)
    assert answer.status == 200


async def _timeline(client: Client, incident_id: int) -> list[dict[str, object]]:
    answer = await client.get(f"/api/v1/incidents/{incident_id}", headers=API)
    return list((await answer.json())["timeline"])


async def test_the_list_shows_open_incidents_and_filters_them(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await _fire(client)  # kis-gateway: api, backend
    await _fire(client, alertname="HighLatency", service="web", team="frontend")
    await signed_in(client)
    page = await client.get("/ui/")
    html = await page.text()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<script>" not in html and " on" + "click=" not in html  # nothing inline
    assert 'href="/ui/incidents/1"' in html and 'href="/ui/incidents/2"' in html
    rows = await client.get("/ui/incidents/rows?team=backend")
    row_html = await rows.text()
    assert rows.status == 200 and "<html" not in row_html
    incident = await client.app[STORE].get_incident(1)
    assert incident is not None
    other = await client.app[STORE].get_incident(2)
    assert other is not None
    shown = set(re.findall(r'data-id="(\d+)"', row_html))
    assert shown == {str(i.id) for i in (incident, other) if i.team == "backend"}
    resolved = await client.get("/ui/incidents/rows?status=resolved")
    assert 'data-id="' not in await resolved.text()


async def test_a_new_incident_reaches_the_polled_rows(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await signed_in(client)
    before = await (await client.get("/ui/incidents/rows")).text()
    assert 'data-id="' not in before
    await _fire(client)
    after = await (await client.get("/ui/incidents/rows")).text()
    assert 'data-id="1"' in after


async def test_one_incident_and_its_buttons_act_as_the_person(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await _fire(client)
    token = await signed_in(client, "choi")
    page = await client.get("/ui/incidents/1")
    html = await page.text()
    assert page.status == 200
    assert 'id="do-acknowledge"' in html and 'id="do-resolve"' in html
    assert "KISTokenRefreshFailed" in html  # the alert's labels
    assert 'class="countdown" data-deadline=' in html  # the phase clocks
    for action in ("acknowledge", "mitigate"):
        clock.advance(minutes=1)
        answer = await client.post("/ui/incidents/1/act", data={"action": action, "csrf": token},
                                   allow_redirects=False)  # fmt: skip
        assert answer.status == 303
        assert answer.headers["Location"] == f"/ui/incidents/1?done={action}.applied"
    events = await _timeline(client, 1)
    acked = [e for e in events if e["event"] == "acknowledged"]
    mitigated = [e for e in events if e["event"] == "mitigated"]
    assert acked and acked[0]["by"] == "choi"
    assert mitigated and mitigated[0]["by"] == "choi"
    again = await client.post("/ui/incidents/1/act", data={"action": "acknowledge",
                              "csrf": token}, allow_redirects=False)  # fmt: skip
    assert again.headers["Location"].endswith("acknowledge.already")
    shown = await (await client.get(again.headers["Location"])).text()
    assert 'role="status"' in shown
    bad = await client.post("/ui/incidents/1/act", data={"action": "explode", "csrf": token})
    assert bad.status == 400
    missing = await client.get("/ui/incidents/999")
    assert missing.status == 404


async def test_korean_by_default_english_on_request_or_by_the_switch(
    make_client: ClientFactory,
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    login = await client.get("/ui/login")
    assert login.headers["Content-Language"] == "ko" and "로그인" in await login.text()
    english = await client.get("/ui/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert english.headers["Content-Language"] == "en" and "Sign in" in await english.text()
    switched = await client.get("/ui/lang?to=en&next=/ui/login", allow_redirects=False)
    assert switched.status == 303 and switched.headers["Location"] == "/ui/login"
    assert switched.cookies[LANG_COOKIE].value == "en"
    page = await client.get("/ui/login", headers={"Accept-Language": "ko"})
    assert page.headers["Content-Language"] == "en"  # the switch wins
    away = await client.get("/ui/lang?to=en&next=https://evil.example/", allow_redirects=False)
    assert away.headers["Location"] == "/ui/"


async def test_the_on_call_page_shows_now_and_two_weeks(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await signed_in(client)
    page = await client.get("/ui/oncall")
    html = await page.text()
    assert page.status == 200
    cfg_rotations = re.findall(r'<h2 id="rot-([^"]+)"', html)
    assert cfg_rotations and "backend" in cfg_rotations
    assert html.count('class="now-person"') == len(cfg_rotations)


async def test_a_maintenance_window_is_made_and_ended(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    token = await signed_in(client)
    zone_now = clock.now.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Seoul"))
    starts = zone_now.strftime("%Y-%m-%dT%H:%M")
    ends = (zone_now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    form = {"csrf": token, "matchers": 'service="kis-gateway"', "starts": starts, "ends": ends,
            "reason": "KIS token rotation"}  # fmt: skip
    bad = await client.post("/ui/maintenance", data={**form, "matchers": "service=~("})
    assert bad.status == 400 and 'id="window-error"' in await bad.text()
    made = await client.post("/ui/maintenance", data=form, allow_redirects=False)
    assert made.status == 303
    listed = await (await client.get("/api/v1/maintenance", headers=API)).json()
    window = next(w for w in listed["windows"] if w["source"] == "api")
    assert window["by"] == "kim" and window["active"]
    page = await (await client.get("/ui/maintenance")).text()
    assert f'id="end-{window["id"]}"' in page
    ended = await client.post(f"/ui/maintenance/{window['id']}/end", data={"csrf": token},
                              allow_redirects=False)  # fmt: skip
    assert ended.headers["Location"] == "/ui/maintenance?done=ended"
    listed = await (await client.get("/api/v1/maintenance", headers=API)).json()
    assert all(w["source"] != "api" for w in listed["windows"])


async def test_route_test_says_who_is_paged(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    token = await signed_in(client)
    answer = await client.post(
        "/ui/route-test",
        data={
            "csrf": token,
            "labels": "alertname=KISTokenRefreshFailed\nservice=kis-gateway",
            "at": "",
        },
    )
    html = await answer.text()
    assert answer.status == 200 and 'id="route-result"' in html
    assert "kis-gateway" in html
    wrong = await client.post("/ui/route-test", data={"csrf": token, "labels": "no equals sign"})
    assert wrong.status == 400


async def test_reports_are_triaged_from_the_console(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    filed = await client.post("/api/v1/reports", json={
        "title": "주문 버튼이 안 눌려요", "description": "매수 버튼을 눌러도 반응이 없습니다.",
        "reporter": {"email": "tester@example.com"}})  # fmt: skip
    assert filed.status in (200, 201, 202), await filed.text()
    incident_id = (await filed.json())["id"]
    token = await signed_in(client, "lee")
    page = await client.get("/ui/reports")
    html = await page.text()
    assert "주문 버튼이 안 눌려요" in html
    assert "tester@example.com" not in html  # the reporter's address stays in JIRA
    answer = await client.post(f"/ui/reports/{incident_id}/triage", data={
        "csrf": token, "severity": "P1", "category": "functional", "assignee": "choi"},
        allow_redirects=False)  # fmt: skip
    assert answer.headers["Location"] == "/ui/reports?done=triage.applied"
    events = await _timeline(client, incident_id)
    triaged = [e for e in events if e["event"] == "triaged"]
    assert triaged and triaged[-1]["by"] == "lee"
    incident = await client.app[STORE].get_incident(incident_id)
    assert incident is not None and incident.severity == "P1"
    assert client.app[CLOCK] is not None


async def test_the_timeline_reads_in_the_readers_language(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await _fire(client)
    await signed_in(client, "choi")
    korean = await (await client.get("/ui/incidents/1")).text()
    assert "발생" in korean and "Opened as" not in korean
    client.session.cookie_jar.update_cookies({LANG_COOKIE: "en"})
    english = await (await client.get("/ui/incidents/1")).text()
    assert "Opened as P1 with 1 alert(s)" in english
    assert '<html lang="en">' in english


async def test_escalate_now_twice_climbs_one_step(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await _fire(client)
    token = await signed_in(client, "lee")
    html = await (await client.get("/ui/incidents/1")).text()
    step = re.search(r'name="step" value="(\d+)"', html)
    assert step is not None
    form = {"action": "escalate", "csrf": token, "step": step.group(1)}
    first = await client.post("/ui/incidents/1/act", data=form, allow_redirects=False)
    second = await client.post("/ui/incidents/1/act", data=form, allow_redirects=False)
    assert first.headers["Location"].endswith("escalate.applied")
    assert second.headers["Location"].endswith("escalate.already")
    escalated = [e for e in await _timeline(client, 1) if e["event"] == "escalated"]
    assert [(e["by"], e["step"]) for e in escalated if e.get("by")] == [("lee", int(step.group(1)))]


async def test_a_filter_the_rules_do_not_know_is_said_and_left_out(
    make_client: ClientFactory,
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await _fire(client)
    await signed_in(client)
    page = await client.get("/ui/?team=gone&severity=P1")
    html = await page.text()
    assert page.status == 200 and 'role="alert"' in html and "team" in html
    assert 'data-id="1"' in html
