"""The delivery core end to end: pages never wait for JIRA, and every outbox row says what
was decided at its event, whatever happens to JIRA or the rules before it is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.test_slack_notify import CFG, Client, with_jira
from tests.api.test_slack_notify import slack as slack  # the fixture, re-exported
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, FakeClock, alert, wait_for, webhook

SILENCE_SECONDS = 30.0  # JIRA answers nothing this long (its client gives up after 15 s)
INCIDENTS = 20


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    async with FakeJira(user="bot", token="t") as fake:
        yield fake


async def jira_keys(client: Client) -> dict[int, str | None]:
    listed = await (await client.get("/api/v1/incidents?limit=100", headers=API)).json()
    return {i["id"]: i["jira_key"] for i in listed["incidents"]}


async def test_pages_go_out_while_jira_answers_nothing_and_each_issue_is_made_once(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    """JIRA holds every request unanswered for 30 s while 20 incidents open: every page is
    delivered meanwhile; once JIRA answers again (handling the held creates too, after
    their client gave up), each incident has exactly one issue."""
    client = await with_jira(make_client, slack, jira)
    jira.silent()
    for n in range(INCIDENTS):
        body = webhook(alert(service=f"svc-{n}", alertname="KISTokenRefreshFailed"))
        assert (await client.post("/webhook", json=body, headers=AUTH)).status == 200
    on_call = CFG.people["kim"].slack_id
    assert on_call is not None
    await wait_for(lambda: len(slack.dms_to(on_call)) == INCIDENTS, seconds=SILENCE_SECONDS)
    assert jira.issues == {}  # nothing reached JIRA meanwhile, and the pages did not wait
    assert len(slack.posted_to(CFG.channels.alerts)) == INCIDENTS
    await asyncio.sleep(SILENCE_SECONDS)  # the JIRA calls under way time out meanwhile
    jira.answer()

    async def all_linked() -> bool:
        clock.advance(minutes=1)  # retries become due
        keys = await jira_keys(client)
        return len(keys) == INCIDENTS and all(keys.values())

    for _ in range(300):
        if await all_linked():
            break
        await asyncio.sleep(0.1)
    keys = await jira_keys(client)
    assert len(keys) == INCIDENTS and all(keys.values()), keys
    assert len(jira.issues) == INCIDENTS  # one each, the held creates included
    assert sorted(keys.values()) == sorted(jira.issues)  # type: ignore[type-var]
    labels = [
        next(x for x in i["fields"]["labels"] if "incident" in x) for i in jira.issues.values()
    ]
    assert len(set(labels)) == INCIDENTS


async def test_a_reload_before_delivery_changes_nothing_the_event_decided(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, tmp_path: Path, clock: FakeClock
) -> None:
    """JIRA is down when an incident opens; the rules are reloaded (another project for
    the team, another priority for the severity, someone else on call) before JIRA is up:
    the issue gets the project, priority and assignee decided when the incident opened."""
    rules = tmp_path / "rules.yaml"
    shipped = SHIPPED_RULES.read_text()
    rules.write_text(shipped)
    client = await with_jira(make_client, slack, jira, rules=str(rules))
    jira.down()
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    await wait_for(lambda: len(jira.requests) > 0)
    changed = (
        shipped.replace("jira_priority: High,", "jira_priority: Low,")
        .replace(
            'lead: kim, channel: "#team-backend", jira_project: OPS',
            'lead: kim, channel: "#team-backend", jira_project: SEC',
        )
        .replace("members: [kim, choi, jung]", "members: [jung, kim, choi]")
    )
    assert changed.count("jira_project: SEC") == 2 and "members: [jung, kim, choi]" in changed
    rules.write_text(changed)
    assert (await client.post("/-/reload", headers=API)).status == 200
    jira.up()
    clock.advance(minutes=1)  # the retry is due
    await wait_for(lambda: len(jira.issues) == 1)
    [issue] = jira.issues.values()
    assert issue["key"].startswith("OPS-")
    assert issue["fields"]["project"] == "OPS"
    assert issue["fields"]["priority"] == "High"
    assert issue["fields"]["assignee"] == {"name": "kim"}
    # a later event is decided under the rules in force then
    [incident_id] = await jira_keys(client)
    ack = await client.post(f"/api/v1/incidents/{incident_id}/ack", json={"by": "kim"}, headers=API)
    assert ack.status == 200
    await wait_for(lambda: any("Acknowledged by" in c for c in jira.comments(issue["key"])))
