"""Slack through the real slack_sdk client against a fake Slack Web API over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.config import load_rules
from tests.api.test_slack import SECRET, signed
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fuzzing import jira_problems, jira_summaries, jira_texts, slack_problems, slack_texts
from tests.helpers import SHIPPED_RULES, FakeClock, alert, wait_for, webhook

CFG = load_rules(SHIPPED_RULES)
USERS = {p.slack_id: pid for pid, p in CFG.people.items() if p.slack_id}
ANNOUNCE = CFG.channels.announce
CHANNELS = [CFG.channels.alerts, CFG.channels.announce, *(t.channel for t in CFG.teams.values())]
Client = TestClient[Any, web.Application]


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[FakeSlack]:
    """The fake Slack, its message timestamps on the test's clock like the receiver's."""
    async with FakeSlack(
        token="xoxb-receiver", users=USERS, channels=CHANNELS, clock=clock
    ) as fake:
        yield fake


async def receiver(make_client: ClientFactory, fake: FakeSlack) -> Client:
    return await make_client(
        slack_token="xoxb-receiver", slack_api_url=fake.url, slack_signing_secret=SECRET
    )


async def with_jira(
    make_client: ClientFactory, fake: FakeSlack, jira: FakeJira, **settings: Any
) -> Client:
    """A receiver on the fake Slack and the fake JIRA (user "bot", token "t")."""
    return await make_client(
        slack_token="xoxb-receiver",
        slack_api_url=fake.url,
        jira_url=jira.url,
        jira_user="bot",
        jira_token="t",
        **settings,
    )


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        element["action_id"]
        for block in FakeSlack.latest(message).get("blocks") or []
        if block.get("type") == "actions"
        for element in block["elements"]
    ]


async def test_p0_pages_four_people_at_once(make_client: ClientFactory, slack: FakeSlack) -> None:
    client = await receiver(make_client, slack)
    down = alert(alertname="ServiceDown", service="order-api")
    assert (await client.post("/webhook", json=webhook(down), headers=AUTH)).status == 200
    paged = ["U0HAN", "U0OH", "U0LEE", "U0PARK"]
    await wait_for(lambda: all(slack.dms_to(u) for u in paged))
    for user in paged:
        [dm] = slack.dms_to(user)
        assert buttons(dm) == ["incident_ack", "incident_mitigate", "incident_resolve"]

    def mentioned() -> set[str]:
        posts = slack.posted_to("#team-features")
        return {u for u in paged if any(f"<@{u}>" in m["text"] for m in posts)}

    await wait_for(lambda: mentioned() == set(paged))  # each DM is followed by its mention
    await wait_for(lambda: bool(slack.posted_to(CFG.channels.alerts)))
    [opened] = slack.posted_to(CFG.channels.alerts)
    assert opened["text"].startswith("New incident: [P0][functional]")


async def test_ack_from_slack_updates_every_message(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack)
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    await wait_for(lambda: bool(slack.dms_to("U0KIM")) and bool(slack.posted_to("#beta-alert")))
    incident = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"][0]
    body, headers = signed("incident_ack", incident["id"], "U0KIM", clock.now.timestamp())
    assert (await client.post("/slack/interactions", data=body, headers=headers)).status == 200
    [dm] = slack.dms_to("U0KIM")
    [opened] = [m for m in slack.posted_to("#beta-alert") if not m["thread_ts"]]
    await wait_for(lambda: bool(dm["updates"]) and bool(opened["updates"]))
    for message in (dm, opened):
        assert buttons(message) == ["incident_mitigate", "incident_resolve"]  # Acknowledge is gone
        assert "Acknowledged by Kim Minjun" in str(FakeSlack.latest(message)["blocks"])
    thread = [m for m in slack.posted_to("#beta-alert") if m["thread_ts"] == opened["ts"]]
    assert [m["text"].split(":")[0] for m in thread] == ["Acknowledged by Kim Minjun"]
    clock.advance(minutes=55)  # past every step within the hour: the ack stopped them all
    # (an hour after the ack, the mitigation's deadline would remind kim: test_phases)
    await asyncio.sleep(0.5)
    assert slack.dms_to("U0LEE") == [] and slack.dms_to("U0PARK") == []
    assert len(slack.dms_to("U0KIM")) == 1


async def test_unacknowledged_p1_escalates_to_the_tech_lead(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack)
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    await wait_for(lambda: bool(slack.dms_to("U0KIM")))
    assert slack.dms_to("U0LEE") == []
    clock.advance(minutes=45)
    await wait_for(lambda: bool(slack.dms_to("U0LEE")))
    await wait_for(lambda: len(slack.dms_to("U0KIM")) == 3)
    # on-call at once, again as team lead (15 min), reminded at the ack deadline (30 min),
    # which brought the tech lead's step (45 min) forward: lee is paged once
    await asyncio.sleep(0.3)
    assert len(slack.dms_to("U0LEE")) == 1 and len(slack.dms_to("U0KIM")) == 3


async def test_rate_limit_is_honoured(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    # the alerts channel, the page and the announcement for beta testers: all refused
    slack.fail_next(429, retry_after=30, method="chat.postMessage", count=3)
    client = await receiver(make_client, slack)
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    await wait_for(lambda: len(slack.calls_to("chat.postMessage")) == 3)
    await asyncio.sleep(0.3)
    clock.advance(seconds=29)
    await asyncio.sleep(0.3)
    assert slack.messages == []  # nothing before Retry-After has passed
    clock.advance(seconds=2)
    await wait_for(
        lambda: all(
            (slack.dms_to("U0KIM"), slack.posted_to("#beta-alert"), slack.posted_to(ANNOUNCE))
        )
    )
    pending = await (await client.get("/api/v1/deliveries?status=dead", headers=API)).json()
    assert pending["deliveries"] == []


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    async with FakeJira(user="receiver-bot", token="jira-api-token") as fake:
        yield fake


async def both(make_client: ClientFactory, slack: FakeSlack, jira: FakeJira) -> Client:
    return await make_client(
        slack_token="xoxb-receiver",
        slack_api_url=slack.url,
        slack_signing_secret=SECRET,
        jira_url=jira.url,
        jira_user="receiver-bot",
        jira_token="jira-api-token",
    )


HOSTILE = "<!channel> <https://evil.example/login|Click to re-auth> *now* _x_ ~y~ `z` @here"
HOSTILE_NOTES = {
    "summary": HOSTILE,
    "description": "ok\nh1. Heading\n* item\n# step\n- dash\n|a|b|\nbq. q\n{panel}x\n----\n"
    "[x|javascript:alert(1)] back\\",
    "runbook_url": "https://evil.example/phish] [Open runbook|javascript:alert(2)",
    "expected": "{code}x{code}",
    "actual": "h1. big\n|cell|",
}


async def test_hostile_alert_text_is_only_text_in_slack_and_jira(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await both(make_client, slack, jira)
    hostile = alert(annotations=HOSTILE_NOTES, instance="db-1\nh1. pwned | x", env="beta]\n* l")
    hostile["generatorURL"] = "javascript:alert(3)"
    body = {**webhook(hostile), "externalURL": "data:text/html,<script>alert(4)</script>"}
    assert (await client.post("/webhook", json=body, headers=AUTH)).status == 200
    [opened] = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]
    await wait_for(
        lambda: bool(slack.dms_to("U0KIM") and slack.posted_to("#team-backend") and jira.issues)
    )
    await wait_for(lambda: bool(slack.posted_to(CFG.channels.alerts)))
    # opened -> paged -> acknowledged from the page's button -> resolved through the API
    form, headers = signed("incident_ack", opened["id"], "U0KIM", clock.now.timestamp())
    assert (await client.post("/slack/interactions", data=form, headers=headers)).status == 200
    path = f"/api/v1/incidents/{opened['id']}/resolve"
    assert (await client.post(path, json={"by": "kim"}, headers=API)).status == 200
    [key] = jira.issues

    def replies() -> list[str]:
        return [m["text"] for m in slack.posted_to(CFG.channels.alerts) if m["thread_ts"]]

    await wait_for(lambda: len(replies()) == 2 and len(jira.issues) == 2)
    await wait_for(lambda: any(c.startswith("Resolved") for c in jira.comments(key)))
    await wait_for(lambda: len(slack.posted_to(ANNOUNCE)) == 2)

    sent = slack_texts(slack)
    assert len(sent) > 10
    assert [p for text in sent for p in slack_problems(text)] == []
    assert any("&lt;!channel&gt; &lt;https://evil.example/login|Click" in t for t in sent)
    texts = jira_texts(jira)
    assert len(texts) >= 4  # the issue, its comments and the postmortem
    assert [p for text in texts for p in jira_problems(text)] == []
    assert all(len(s) <= 255 and "\n" not in s for s in jira_summaries(jira))
    issue = jira.issues[key]["fields"]["description"]
    assert "*Runbook:* [https://evil.example/phish%5D%20%5BOpen%20runbook%7Cjavascript:" in issue
    assert "* Prometheus graph: javascript:alert(3)" in issue
    assert "* Alertmanager: data:text/html,<script>alert(4)</script>" in issue
    assert "\n&#104;1. Heading\n\\* item\n&#35; step\n&#45; dash\n" in issue


async def test_a_huge_summary_is_cut_and_the_page_arrives(
    make_client: ClientFactory, slack: FakeSlack
) -> None:
    client = await receiver(make_client, slack)
    huge = alert(annotations={"summary": "&<*" * 3334})  # 10,002 characters, each escaped
    assert (await client.post("/webhook", json=webhook(huge), headers=AUTH)).status == 200
    await wait_for(lambda: bool(slack.dms_to("U0KIM") and slack.posted_to("#team-backend")))
    await wait_for(lambda: bool(slack.posted_to(CFG.channels.alerts)))
    [dm] = slack.dms_to("U0KIM")
    assert FakeSlack.latest(dm)["blocks"][0]["text"]["text"].endswith("…")
    assert [p for text in slack_texts(slack) for p in slack_problems(text)] == []
    dead = await (await client.get("/api/v1/deliveries?status=dead", headers=API)).json()
    assert dead["deliveries"] == []


async def test_a_page_says_what_broke_since_when_and_where_to_look(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    """What an on-call engineer woken at night needs is in the page itself: the summary and
    description, since when and by when (team time zone), expected against actual, the
    alert count, and links to the runbook, the JIRA issue, the graph and Alertmanager."""
    async with FakeJira(user="bot", token="t") as jira:
        client = await with_jira(make_client, slack, jira)
        notes = {
            "summary": "KIS token refresh failing",
            "description": "3 refreshes failed in 5m; orders are refused",
            "runbook_url": "https://runbooks.example/kis-token?step=1&lang=ko",
            "expected": "refresh succeeds",
            "actual": "HTTP 500 from KIS",
        }
        body = webhook(alert(annotations=notes))
        assert (await client.post("/webhook", json=body, headers=AUTH)).status == 200
        await wait_for(lambda: bool(slack.dms_to("U0KIM")))
        [dm] = slack.dms_to("U0KIM")
        text = " ".join(str(block) for block in dm["blocks"])
        assert dm["text"].startswith("Page: New incident: [P1][api] KIS token refresh failing")
        for needle in (
            "You are paged (step 0, as oncall). Respond by 2026-11-26 14:00 KST.",
            "3 refreshes failed in 5m; orders are refused",
            "Firing since 2026-11-26 10:00 KST",
            "1 alert(s) firing",
            "Expected: refresh succeeds · Actual: HTTP 500 from KIS",
            "<https://runbooks.example/kis-token?step=1&amp;lang=ko|Runbook>",
            "<http://prometheus.example:9090/graph?g0.expr=up|Prometheus graph>",
            "<http://alertmanager.example:9093|Alertmanager>",
        ):
            assert needle in text, needle
        assert [p for text in slack_texts(slack) for p in slack_problems(text)] == []


async def test_a_page_links_the_jira_issue_once_it_exists(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    """A page fired after the issue was created (an escalation step) links it."""
    async with FakeJira(user="bot", token="t") as jira:
        client = await with_jira(make_client, slack, jira)
        assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
        await wait_for(lambda: len(jira.issues) == 1)
        [key] = jira.issues
        for _ in range(200):  # until the key is recorded with the delivery's outcome
            listed = await (await client.get("/api/v1/incidents", headers=API)).json()
            if listed["incidents"][0]["jira_key"] == key:
                break
            await asyncio.sleep(0.02)
        clock.advance(minutes=15)  # step 1: the team lead, after the issue exists
        await wait_for(lambda: len(slack.dms_to("U0KIM")) == 2)
        latest = slack.dms_to("U0KIM")[-1]
        assert f"<{jira.url}/browse/{key}|JIRA {key}>" in str(latest["blocks"])


async def test_a_reopened_incident_is_paged_as_reopened(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack)
    firing = alert()
    assert (await client.post("/webhook", json=webhook(firing), headers=AUTH)).status == 200
    clock.advance(minutes=5)
    gone = {**firing, "status": "resolved", "endsAt": firing["startsAt"]}
    assert (await client.post("/webhook", json=webhook(gone), headers=AUTH)).status == 200
    clock.advance(minutes=5)
    again = alert(starts=clock.now)
    assert (await client.post("/webhook", json=webhook(again), headers=AUTH)).status == 200
    await wait_for(lambda: len(slack.dms_to("U0KIM")) == 2)
    reopened = slack.dms_to("U0KIM")[-1]
    assert reopened["text"].startswith("Page: Reopened: [P1][api]")
    assert "Reopened — You are paged" in str(reopened["blocks"])


async def test_the_channel_post_shows_the_issue_once_it_exists(
    make_client: ClientFactory, slack: FakeSlack
) -> None:
    """The alerts-channel post is updated when the JIRA issue is created, not at the ack."""
    async with FakeJira(user="bot", token="t") as jira:
        client = await with_jira(make_client, slack, jira)
        assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
        await wait_for(lambda: len(jira.issues) == 1)
        [key] = jira.issues

        def post_names_the_issue() -> bool:
            [post] = slack.posted_to(CFG.channels.alerts)
            return f"JIRA {key}" in str(FakeSlack.latest(post)["blocks"])

        await wait_for(post_names_the_issue)
        [post] = slack.posted_to(CFG.channels.alerts)
        assert FakeSlack.latest(post)["text"].startswith("New incident: [P1][api]")
        assert [m for m in slack.posted_to(CFG.channels.alerts) if m["thread_ts"]] == []
        [dm] = slack.dms_to("U0KIM")  # the page keeps what it says
        assert "You are paged" in str(FakeSlack.latest(dm)["blocks"])
