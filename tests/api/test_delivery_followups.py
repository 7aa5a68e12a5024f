"""What follows a delivery, and rows from before instructions: a page sent before the
incident's JIRA issue existed shows the issue once it does, and outbox rows an earlier
version wrote (a snapshot to render at delivery) are still delivered after an upgrade."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from receiver.api.keys import STORE
from receiver.domain.delivery import Channel, Kind
from receiver.domain.model import Incident
from receiver.store.base import NewNotification, Store, UnitOfWork
from tests.api.test_slack_notify import CFG, Client, with_jira
from tests.api.test_slack_notify import slack as slack  # the fixture, re-exported
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import FakeClock, alert, wait_for, webhook

KIM = CFG.people["kim"].slack_id
LEE = CFG.people["lee"].slack_id


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    async with FakeJira(user="bot", token="t") as fake:
        yield fake


async def issue_made(jira: FakeJira, clock: FakeClock) -> str:
    """Bring JIRA up, let the retry come due, and wait for the one issue; its key."""
    jira.up()
    clock.advance(minutes=1)
    await wait_for(lambda: len(jira.issues) == 1)
    [key] = jira.issues
    return key


def texts(message: dict[str, Any]) -> str:
    return str(FakeSlack.latest(message)["blocks"])


async def open_one(client: Client, slack: FakeSlack) -> int:
    """One P1 incident, paged to kim; its id."""
    body = webhook(alert(service="order-api", alertname="KISTokenRefreshFailed"))
    answer = await client.post("/webhook", json=body, headers=AUTH)
    assert answer.status == 200
    assert KIM is not None
    await wait_for(lambda: len(slack.dms_to(KIM)) == 1)
    [incident_id] = (await answer.json())["incidents"]
    return int(incident_id)


async def test_a_page_sent_before_the_issue_existed_links_it_once_it_does(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    """JIRA is down when the incident opens: the page goes out at once saying "JIRA
    pending"; when the issue is made, the DM (in its page layout, still with what broke and
    the Acknowledge button) and the channel post show it, the DM as a link."""
    client = await with_jira(make_client, slack, jira)
    jira.down()
    await open_one(client, slack)
    assert KIM is not None
    [dm] = slack.dms_to(KIM)
    assert "JIRA pending" in texts(dm) and "/browse/" not in texts(dm)
    key = await issue_made(jira, clock)
    await wait_for(lambda: f"/browse/{key}|JIRA {key}>" in texts(dm))
    shown = texts(dm)
    assert "You are paged (step 0, as oncall)" in shown  # still the page, not the channel post
    assert "incident_ack" in shown and "JIRA pending" not in shown
    post = slack.posted_to(CFG.channels.alerts)[0]  # then its thread replies
    await wait_for(lambda: f"JIRA {key}" in texts(post))
    assert "You are paged" not in texts(post)


async def test_an_acknowledged_incident_keeps_its_pages_as_they_are_when_the_issue_appears(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    """Acknowledged before JIRA answered: the ack brought the DM up to date; the issue
    arriving later does not turn it back into a page."""
    client = await with_jira(make_client, slack, jira)
    jira.down()
    incident_id = await open_one(client, slack)
    ack = await client.post(f"/api/v1/incidents/{incident_id}/ack", json={"by": "kim"}, headers=API)
    assert ack.status == 200
    assert KIM is not None
    [dm] = slack.dms_to(KIM)
    await wait_for(lambda: "Acknowledged by Kim Minjun" in texts(dm))
    key = await issue_made(jira, clock)
    await wait_for(lambda: any("Acknowledged by" in c for c in jira.comments(key)))
    store: Store = client.app[STORE]

    async def linked_and_sent() -> bool:
        sent = await store.deliveries("sent", incident_id, 50)
        return any(d.kind == Kind.JIRA_LINKED for d in sent)

    for _ in range(200):
        if await linked_and_sent():
            break
        await asyncio.sleep(0.05)
    assert await linked_and_sent()
    assert "You are paged" not in texts(dm) and "Acknowledged by Kim Minjun" in texts(dm)


def snapshot(incident: Incident, **changes: Any) -> dict[str, Any]:
    """The incident as a row of the earlier version kept it."""
    return {
        "key": incident.key,
        "rule": incident.rule,
        "severity": incident.severity,
        "category": incident.category,
        "team": incident.team,
        "status": incident.status.value,
        "summary": incident.summary,
        "group_labels": incident.group_labels,
        "jira_key": incident.jira_key,
        "jira_project": "OPS",
        "jira_priority": "High",
        "channel": CFG.channels.alerts,
        "team_channel": "#team-backend",
        "acknowledged_by": incident.acknowledged_by,
        "resolved_by": incident.resolved_by,
        **changes,
    }


async def write_old_rows(store: Store, incident_id: int, at: str) -> None:
    """What the earlier version queued for an ack by kim and a step-1 page to lee."""
    incident = await store.get_incident(incident_id)
    assert incident is not None
    acked = snapshot(incident, status="acknowledged", acknowledged_by="kim")
    event = {"event": "acknowledged", "at": at, "by": "kim"}
    old = {"kind": Kind.ACKNOWLEDGED, "incident": acked, "events": [event]}
    page = {
        "due_at": at,
        "brief": {"trigger": "opened", "description": "refresh job failing", "alerts": 1},
        "person": "lee",
        "name": "Lee Jisoo",
        "slack_id": LEE,
        "email": None,
        "target": "lead",
        "step": 1,
        "incident": snapshot(incident),
    }
    unit = UnitOfWork()
    unit.notify(incident_id, NewNotification(Channel.JIRA, Kind.ACKNOWLEDGED, old))
    unit.notify(incident_id, NewNotification(Channel.SLACK, Kind.ACKNOWLEDGED, dict(old)))
    unit.notify(incident_id, NewNotification(Channel.PAGER, Kind.PAGE, page))
    await store.commit(unit, incident.opened_at)


async def test_rows_an_earlier_version_queued_are_delivered_after_the_upgrade(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    """Rows of the earlier shape (a snapshot and events, rendered by the notifier) still
    pending when the new version starts: the JIRA comment, the Slack reply and update and
    the page all go out as they were meant, none dead-lettered."""
    client = await with_jira(make_client, slack, jira)
    jira.down()  # the open's own JIRA row waits, so the old ack row queues behind it
    incident_id = await open_one(client, slack)
    store: Store = client.app[STORE]
    await write_old_rows(store, incident_id, clock.now.isoformat())
    assert LEE is not None
    await wait_for(lambda: len(slack.dms_to(LEE)) == 1)
    [page] = slack.dms_to(LEE)
    assert "You are paged (step 1, as lead)" in texts(page)
    assert "refresh job failing" in texts(page)
    post = slack.posted_to(CFG.channels.alerts)[0]  # then its thread replies
    await wait_for(lambda: "Acknowledged by Kim Minjun" in texts(post))
    key = await issue_made(jira, clock)
    await wait_for(lambda: any("Acknowledged by Kim Minjun" in c for c in jira.comments(key)))
    assert jira.issues[key]["fields"]["priority"] == "High"
    dead = await store.deliveries("dead", None, 50)
    assert dead == []
