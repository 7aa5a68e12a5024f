"""Announcements for beta testers, postmortem issues and the plain-text timeline, end to end
through the real slack_sdk and jira clients against the fake servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.config import load_rules
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fuzzing import jira_problems, jira_texts
from tests.helpers import SHIPPED_RULES, FakeClock, alert, resolved, wait_for, webhook

CFG = load_rules(SHIPPED_RULES)
USERS = {p.slack_id: pid for pid, p in CFG.people.items() if p.slack_id}
CHANNELS = [CFG.channels.alerts, CFG.channels.announce, *(t.channel for t in CFG.teams.values())]
ANNOUNCE = CFG.channels.announce
JIRA_USER, JIRA_TOKEN = "receiver-bot", "jira-api-token"
Client = TestClient[Any, web.Application]

# A P0: the order API down, on a host with an internal address.
DOWN: dict[str, Any] = {
    "alertname": "ServiceDown",
    "service": "order-api",
    "instance": "10.20.30.40:8080",
}


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token="xoxb-r", users=USERS, channels=CHANNELS, clock=clock) as fake:
        yield fake


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    async with FakeJira(user=JIRA_USER, token=JIRA_TOKEN) as fake:
        yield fake


async def receiver(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, **settings: Any
) -> Client:
    return await make_client(
        slack_token="xoxb-r",
        slack_api_url=slack.url,
        jira_url=jira.url,
        jira_user=JIRA_USER,
        jira_token=JIRA_TOKEN,
        **settings,
    )


async def post(client: Client, *alerts: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/webhook", json=webhook(*alerts), headers=AUTH)
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


def texts(slack: FakeSlack) -> list[str]:
    return [m["text"] for m in slack.posted_to(ANNOUNCE)]


def assert_plain(text: str) -> None:
    """No label, rule, host, port or address leaks to beta testers."""
    for internal in ("order-api", "ServiceDown", "trading-service-down", "10.20.30.40", "P0"):
        assert internal not in text, (internal, text)
    assert not re.search(r"\d+\.\d+\.\d+\.\d+", text), text


async def test_p0_is_announced_on_open_and_resolve_and_gets_a_linked_postmortem(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack, jira)
    down = alert(**DOWN)
    incident_id = (await post(client, down))["incidents"][0]
    await wait_for(lambda: len(texts(slack)) == 1 and len(jira.issues) == 1)
    [opened] = texts(slack)
    assert opened.startswith("거래(주문 접수와 조회) 관련 문제를 확인하고 있습니다.")  # Korean
    # the first alert, in the team's time zone, as Koreans write it
    assert "2026년 11월 26일 (목) 오전 10:00 KST부터 발생했습니다." in opened
    assert_plain(opened)

    clock.advance(minutes=12)
    ack = await client.post(f"/api/v1/incidents/{incident_id}/ack", json={"by": "han"}, headers=API)
    assert ack.status == 200
    clock.advance(minutes=53)
    await post(client, resolved(down, clock.now))
    await wait_for(lambda: len(texts(slack)) == 2)
    closed = texts(slack)[1]
    assert closed.startswith("해결: 거래(주문 접수와 조회) 관련 문제가 2026년 11월 26일 (목)")
    assert "1시간 5분 동안 이어졌습니다" in closed and "오전 11:05 KST에 해결" in closed
    assert_plain(closed)

    await wait_for(lambda: len(jira.issues) == 2)
    [issue_key] = [k for k, i in jira.issues.items() if "postmortem" not in i["fields"]["labels"]]
    [pm_key] = [k for k, i in jira.issues.items() if "postmortem" in i["fields"]["labels"]]
    postmortem = jira.issues[pm_key]["fields"]
    assert postmortem["issuetype"] == "Task"
    assert postmortem["summary"].startswith("Postmortem: [P0][functional]")
    description: str = postmortem["description"]
    timeline = (await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json())[
        "timeline"
    ]
    # Every timeline entry is in the postmortem, in order, after the first alert.
    rows = [line for line in description.splitlines() if re.match(r"\|\d{4}-", line)]
    assert rows[0].endswith("|First alert fired|")
    assert any(f"JIRA issue {issue_key} created" in r for r in rows)
    described = [r for r in rows if "First alert" not in r and "JIRA issue" not in r]
    assert [r.split("|")[2].split(" ")[0] for r in described] == [
        {
            "opened": "Opened",
            "paged": "Paged",
            "acknowledged": "Acknowledged",
            "alerts_resolved": "1",
            "resolved": "Resolved:",
        }[e["event"]]
        for e in timeline
        if e["event"] != "jira_issue"  # the row checked above
    ]
    assert "jira_issue" in [e["event"] for e in timeline]
    assert "Acknowledged by Han" in description and "Paged " in description
    assert "|Alert to ack|12 min|15 min (ack timeout)|yes|" in description
    assert "|Time to resolve|1 h 5 min|1 h (respond within)|no|" in description
    for section in ("Root cause", "Response evaluation", "Improvements", "Prevention"):
        assert f"h3. {section}" in description

    def linked() -> set[str]:
        links = jira.issues[pm_key]["links"]
        return {side for link in links for side in (link["inward"], link["outward"])}

    await wait_for(lambda: issue_key in linked())
    assert linked() == {pm_key, issue_key}


async def settled(client: Client) -> bool:
    body = await (await client.get("/api/v1/deliveries?status=pending", headers=API)).json()
    return not body["deliveries"]


async def test_p2_is_neither_announced_nor_postmortemed(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack, jira)
    expiring = alert(alertname="KISTokenExpiringSoon")
    await post(client, expiring)
    clock.advance(minutes=5)
    await post(client, resolved(expiring, clock.now))
    for _ in range(200):
        if jira.issues and await settled(client):
            break
        clock.advance(seconds=5)
        await asyncio.sleep(0.05)
    assert await settled(client)
    [issue] = jira.issues.values()
    assert issue["status"] == "Done"  # resolved, and nothing more
    assert texts(slack) == []
    kinds = [d["kind"] for d in (await (await client.get(
        "/api/v1/deliveries", headers=API)).json())["deliveries"]]  # fmt: skip
    assert "incident.postmortem" not in kinds and not any(k.startswith("announce") for k in kinds)


def rules_with(tmp_path: Path, **sections: Any) -> str:
    """A copy of the shipped rules with top-level sections replaced."""
    raw = yaml.safe_load(SHIPPED_RULES.read_text())
    raw.update(sections)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


async def test_p1_raised_to_p0_is_announced_as_more_serious(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock, tmp_path: Path
) -> None:
    raw = yaml.safe_load(SHIPPED_RULES.read_text())
    for rule in raw["rules"]:
        if rule["name"] == "high-response-time":
            rule["severity_from"]["map"] = {"critical": "P0", "warning": "P1"}
    english = {"locale": "en"}
    rules = rules_with(tmp_path, rules=raw["rules"], announcements=english)
    client = await receiver(make_client, slack, jira, rules=rules)
    slow: dict[str, Any] = {"alertname": "HighResponseTime", "service": "order-api"}
    await post(client, alert(severity="warning", instance="a", **slow))  # P1
    await wait_for(lambda: len(texts(slack)) == 1)
    clock.advance(minutes=3)
    await post(client, alert(severity="critical", instance="b", **slow))  # raises it to P0
    await wait_for(lambda: len(texts(slack)) == 2)
    opened, raised = texts(slack)
    assert opened.startswith("We are looking into a problem affecting how fast the app responds")
    assert raised.startswith("Update: the problem affecting how fast the app responds")
    assert "more serious" in raised and "(since Nov 26, 2026, 10:00 AM KST)" in raised
    assert_plain(raised)
    # the issue's summary and labels say P0 now, with its priority
    [issue] = jira.issues.values()
    fields = issue["fields"]
    await wait_for(lambda: fields["summary"].startswith("[P0][performance]") and (
        fields["priority"] == "Highest"))  # fmt: skip
    assert (
        "severity-p0" in issue["fields"]["labels"]
        and "severity-p1" not in issue["fields"]["labels"]
    )
    assert issue["fields"]["priority"] == "Highest"


async def test_rules_file_overrides_the_wording(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, tmp_path: Path
) -> None:
    announcements = {
        "default": {"opened": "Heads up: {affected} has trouble since {since}."},
        "functional": {"affected": "ordering"},
    }
    rules = rules_with(tmp_path, announcements=announcements)
    client = await receiver(make_client, slack, jira, rules=rules)
    await post(client, alert(**DOWN))
    await wait_for(lambda: len(texts(slack)) == 1)
    # the placeholders are filled in the announcements' language (Korean unless told)
    assert texts(slack) == [
        "Heads up: ordering has trouble since 2026년 11월 26일 (목) 오전 10:00 KST."
    ]


@pytest.mark.parametrize(
    ("labels", "announced"),
    [
        ({"alertname": "ReceiverDeadLetters"}, None),  # the receiver's own health (P1)
        ({"alertname": "UnauthorizedAccessSpike"}, None),  # security (P1)
        ({"alertname": "MarketDataStale", "feed": "krx"}, "실시간 시세와 차트 관련 문제"),
    ],
)
async def test_what_testers_are_told_of_the_shipped_p1_rules(
    make_client: ClientFactory,
    slack: FakeSlack,
    jira: FakeJira,
    clock: FakeClock,
    labels: dict[str, Any],
    announced: str | None,
) -> None:
    client = await receiver(make_client, slack, jira)
    incident_id = (await post(client, alert(**labels)))["incidents"][0]
    body = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    assert body["severity"] == "P1"
    for _ in range(200):
        if jira.issues and await settled(client):
            break
        clock.advance(seconds=5)
        await asyncio.sleep(0.02)
    assert await settled(client)
    if announced is None:
        assert texts(slack) == []
    else:
        [text] = texts(slack)
        assert text.startswith(announced)


async def test_timeline_as_json_and_as_text(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack, jira)
    incident_id = (await post(client, alert(**DOWN)))["incidents"][0]
    path = f"/api/v1/incidents/{incident_id}/timeline"

    async def timeline_events() -> list[str]:
        as_json = await (await client.get(path, headers=API)).json()
        return [e["event"] for e in as_json["timeline"]]

    for _ in range(200):  # the JIRA issue is on the timeline once its key is recorded
        if "jira_issue" in await timeline_events():
            break
        await asyncio.sleep(0.02)
    clock.advance(minutes=2)
    await client.post(f"/api/v1/incidents/{incident_id}/ack", json={"by": "han"}, headers=API)
    events = await timeline_events()
    assert events[0] == "opened" and events[-1] == "acknowledged" and "jira_issue" in events
    for query, headers in (("?format=text", API), ("", {**API, "Accept": "text/plain"})):
        resp = await client.get(path + query, headers=headers)
        assert resp.status == 200 and resp.content_type == "text/plain"
        text = await resp.text()
        assert text.startswith(f"Incident #{incident_id}: [P0][functional]")
        lines = [line.strip() for line in text.splitlines() if line.startswith("  2026-")]
        assert len(lines) == len(events)
        assert lines[0].startswith("2026-11-26 10:00:00 KST  Opened as P0 with 1 alert(s)")
        assert lines[-1].endswith("Acknowledged by Han Jiwoo")
        assert "Alert to ack: 2 min (target 15 min (ack timeout); met: yes)" in text
    bad = await client.get(path + "?format=xml", headers=API)
    assert bad.status == 400 and (await bad.json())["field"] == "format"
    missing = await client.get("/api/v1/incidents/999/timeline", headers=API)
    assert missing.status == 404
    assert (await client.get(path)).status == 401


async def test_a_reopened_incident_brings_its_postmortem_up_to_date(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack, jira)
    down = alert(**DOWN)
    incident_id = (await post(client, down))["incidents"][0]
    clock.advance(minutes=20)
    await post(client, resolved(down, clock.now))

    def postmortems() -> list[dict[str, Any]]:
        return [i for i in jira.issues.values() if "postmortem" in i["fields"]["labels"]]

    await wait_for(lambda: len(postmortems()) == 1)
    clock.advance(hours=2)  # within jira.reopen_window: the same incident again
    again = alert(**DOWN, starts=clock.now)
    assert (await post(client, again))["incidents"] == [incident_id]
    clock.advance(minutes=35)
    await post(client, resolved(again, clock.now))
    [pm] = postmortems()

    def cycle() -> list[str]:
        return [c for c in jira.comments(pm["key"]) if "Reopened and resolved again" in c]

    await wait_for(lambda: len(cycle()) == 1)
    [note] = cycle()
    assert "(2 cycles in all)" in note and "35 min this time" in note
    assert "|2026-11-26 12:20:00 KST|Reopened" in note
    assert len(postmortems()) == 1  # the same postmortem, brought up to date
    for text in jira_texts(jira):
        assert jira_problems(text) == [], text


async def test_the_daily_standup_is_posted_once_per_day_whatever_restarts_do(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock, tmp_path: Path
) -> None:
    raw = yaml.safe_load(SHIPPED_RULES.read_text())
    raw["channels"]["standup"] = "#team-backend"
    standup = {"at": "09:30", "days": ["mon", "tue", "wed", "thu", "fri"], "holidays": "KR"}
    rules = rules_with(tmp_path, channels=raw["channels"], standup=standup)
    client = await receiver(make_client, slack, jira, rules=rules)
    await post(client, alert(**DOWN))  # Thursday 10:00 in Seoul: after today's standup

    def standups() -> list[str]:
        return [m["text"] for m in slack.posted_to("#team-backend") if "Daily standup" in m["text"]]

    await asyncio.sleep(0.3)
    assert standups() == []
    clock.now = datetime.fromisoformat("2026-11-27T09:30:00+09:00")  # Friday
    await wait_for(lambda: len(standups()) == 1)
    [friday] = standups()
    assert friday.startswith("*Daily standup*: Fri 27 Nov 2026 09:30 KST\n*Active:* 1")
    assert "[P0][functional]" in friday and "ack overdue by" in friday
    assert "*Since the last standup* (Thu 09:30): 1 opened, 0 resolved" in friday
    again = await receiver(make_client, slack, jira, rules=rules)  # a restart, the same store
    assert (await again.get("/healthz")).status == 200
    await asyncio.sleep(0.3)
    assert len(standups()) == 1
    clock.now = datetime.fromisoformat("2026-11-28T09:30:00+09:00")  # Saturday: none
    await asyncio.sleep(0.3)
    assert len(standups()) == 1
    clock.now = datetime.fromisoformat("2026-11-30T09:30:05+09:00")  # Monday
    await wait_for(lambda: len(standups()) == 2)
    assert "(Fri 09:30): 0 opened, 0 resolved" in standups()[1]
    # down from Monday until Thursday afternoon: Tuesday's standup is not posted days late
    clock.now = datetime.fromisoformat("2026-12-03T15:00:00+09:00")
    await asyncio.sleep(0.5)
    assert len(standups()) == 2
    clock.now = datetime.fromisoformat("2026-12-04T09:30:00+09:00")  # Friday's is
    await wait_for(lambda: len(standups()) == 3)
