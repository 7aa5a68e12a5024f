"""Heartbeats through the whole app with fake Slack and JIRA over HTTP: the Watchdog alert
keeps the shipped ``watchdog`` heartbeat alive and opens no incident; silence past
``every + grace`` opens ``heartbeat:watchdog`` and pages devops' on-call; life coming back
resolves it; a cron job pings through the API."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

from receiver.api.keys import HEARTBEATS, SERVICE, STORE
from receiver.intake.alertmanager import View
from receiver.service.silences import Reconciler
from tests.api.test_reports import live
from tests.api.test_slack_notify import jira as jira  # the fixtures, re-exported
from tests.api.test_slack_notify import slack as slack
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import FakeClock, alert, wait_for, webhook

T0 = datetime.fromisoformat("2026-11-26T10:00:00+09:00")  # kang is devops' on-call
MINUTE = timedelta(minutes=1)


def sample(text: str, metric: str) -> float:
    """The watchdog heartbeat's sample of a metric."""
    found = re.search(rf'^{metric}{{name="watchdog"}} (\S+)$', text, re.MULTILINE)
    assert found is not None, metric
    return float(found.group(1))


async def incidents(client: Any) -> list[dict[str, Any]]:
    body = await (await client.get("/api/v1/incidents", headers=API)).json()
    found: list[dict[str, Any]] = body["incidents"]
    return found


async def watchdog(client: Any, at: datetime) -> None:
    resp = await client.post("/webhook", json=webhook(alert(starts=at, alertname="Watchdog")),
                             headers=AUTH)  # fmt: skip
    assert resp.status == 200


async def test_a_silent_watchdog_opens_its_incident_pages_and_resolves_when_back(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client(**live(slack, jira))
    await watchdog(client, T0)
    assert await incidents(client) == []  # a sign of life, not an incident
    beats = (await (await client.get("/api/v1/heartbeats", headers=API)).json())["heartbeats"]
    assert [(b["name"], b["state"], b["last_seen"]) for b in beats] == [
        ("watchdog", "alive", "2026-11-26T01:00:00Z")
    ]
    clock.now = T0 + 6 * MINUTE
    await watchdog(client, T0)  # Alertmanager re-sends it
    clock.now = T0 + 12 * MINUTE  # within every + grace (7m) of the last one
    await asyncio.sleep(0.3)
    assert await incidents(client) == []

    clock.now = T0 + 13 * MINUTE + timedelta(seconds=1)  # 7m and a second of silence
    await wait_for(lambda: len(slack.dms_to("U0KANG")) == 1)
    [opened] = await incidents(client)
    assert (opened["key"], opened["severity"], opened["category"], opened["team"]) == (
        "heartbeat:watchdog", "P1", "network", "devops"
    )  # fmt: skip
    # every replica watches: another look at the same silence changes nothing
    store = client.app[STORE]
    for _ in range(100):  # the loop records the silence just after its incident is in
        if (await store.heartbeats())["watchdog"][1] is not None:
            break
        await asyncio.sleep(0.02)
    assert await client.app[HEARTBEATS].step() == 0
    await asyncio.sleep(0.2)
    assert len(await incidents(client)) == 1 and len(slack.dms_to("U0KANG")) == 1
    text = await (await client.get("/metrics")).text()
    last = (T0 + 6 * MINUTE).timestamp()
    assert sample(text, "receiver_heartbeat_last_seen_timestamp_seconds") == last
    assert sample(text, "receiver_heartbeats_missed_total") == 1

    clock.now = T0 + 20 * MINUTE
    await watchdog(client, clock.now)  # Alertmanager is back
    view: dict[str, Any] = {}

    async def resolved() -> bool:
        view.update(await (await client.get(f"/api/v1/incidents/{opened['id']}",
                                            headers=API)).json())  # fmt: skip
        return bool(view["status"] == "resolved")

    for _ in range(100):
        if await resolved():
            break
        await asyncio.sleep(0.05)
    assert view["status"] == "resolved"
    assert [e["event"] for e in view["timeline"]][:2] == ["opened", "paged"]
    await wait_for(lambda: len(slack.posted_to("#beta-alert")) >= 2)  # opened, resolved
    assert slack.posted_to("#beta-announcements") == []  # the alert path is no outage


async def test_a_cron_job_pings_its_heartbeat_through_the_api(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client(**live(slack, jira))
    unknown = await client.post("/api/v1/heartbeats/kis-token-refresh", headers=API)
    assert unknown.status == 404
    assert "known: watchdog" in (await unknown.json())["error"]
    assert (await client.post("/api/v1/heartbeats/watchdog")).status == 401  # needs the token
    ping = await client.post("/api/v1/heartbeats/watchdog", headers=API)
    assert ping.status == 200
    assert await ping.json() == {
        "name": "watchdog", "last_seen": "2026-11-26T01:00:00Z", "was_missed": False
    }  # fmt: skip
    clock.now = T0 + 8 * MINUTE
    await wait_for(lambda: len(slack.dms_to("U0KANG")) == 1)
    clock.now = T0 + 9 * MINUTE
    again = await client.post("/api/v1/heartbeats/watchdog", headers=API)
    assert (await again.json())["was_missed"] is True
    for _ in range(100):
        [incident] = await incidents(client)
        if incident["status"] == "resolved":
            break
        await asyncio.sleep(0.05)
    assert incident["status"] == "resolved"


async def test_a_heartbeat_never_seen_pages_nobody(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client(**live(slack, jira))
    clock.now = T0 + timedelta(days=2)
    assert await client.app[HEARTBEATS].step() == 0
    assert await incidents(client) == []
    beats = (await (await client.get("/api/v1/heartbeats", headers=API)).json())["heartbeats"]
    assert beats[0]["state"] == "waiting"


class EmptyAlertmanager:
    """An Alertmanager that answers and holds nothing (it never has the receiver's own)."""

    async def views(self) -> tuple[list[View], list[str]]:
        return [View("http://127.0.0.1:9093", {}, {})], []


async def test_alertmanager_not_holding_the_silence_leaves_its_incident_open(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client(run_worker=False)
    await watchdog(client, T0)
    clock.now = T0 + 8 * MINUTE
    assert await client.app[HEARTBEATS].step() == 1
    reconciler = Reconciler(client.app[SERVICE], EmptyAlertmanager(), grace_seconds=0)  # type: ignore[arg-type]
    for _ in range(2):  # the first finds alerts gone, the second would resolve them
        await reconciler.step()
        clock.now += MINUTE
    [silent] = await incidents(client)
    assert silent["status"] == "triggered"
    assert await client.app[HEARTBEATS].step() == 0  # still missed: nothing to do


async def test_a_receiver_back_from_downtime_waits_before_calling_a_heartbeat_silent(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    """Down over every + grace (a deploy), the receiver heard nothing meanwhile: it gives
    the heartbeat every + grace from its start before it pages anyone."""
    clock.now = T0
    first = await make_client(run_worker=False)
    await watchdog(first, T0)
    await first.close()
    clock.now = T0 + 60 * MINUTE
    again = await make_client(run_worker=False)  # the same database
    assert await again.app[HEARTBEATS].step() == 0
    clock.now = T0 + 67 * MINUTE + timedelta(seconds=1)
    assert await again.app[HEARTBEATS].step() == 1
    [silent] = await incidents(again)
    assert silent["key"] == "heartbeat:watchdog"


async def test_two_replicas_watching_one_silence_open_one_incident_and_page_once(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    """Two receivers on one database, each with its own heartbeat loop, timer loop and
    outbox worker: the silence both see is one incident, paged once, resolved once."""
    clock.now = T0
    one = await make_client(**live(slack, jira))
    two = await make_client(**live(slack, jira))  # the same database
    await watchdog(one, T0)
    clock.now = T0 + 7 * MINUTE + timedelta(seconds=1)
    await wait_for(lambda: len(slack.dms_to("U0KANG")) == 1)
    await asyncio.gather(one.app[HEARTBEATS].step(), two.app[HEARTBEATS].step())
    await asyncio.sleep(0.5)  # both loops and both workers have had their turns
    [silent] = await incidents(two)
    assert silent["key"] == "heartbeat:watchdog"
    assert len(slack.dms_to("U0KANG")) == 1
    assert len(jira.issues_by_label(f"receiver-incident-{await installation(one)}-1")) == 1
    clock.now = T0 + 9 * MINUTE
    await watchdog(two, clock.now)  # life comes back through the other replica
    for _ in range(100):
        [back] = await incidents(one)
        if back["status"] == "resolved":
            break
        await asyncio.sleep(0.05)
    assert back["status"] == "resolved"
    resolves = [e for e in (await full(one, back["id"]))["timeline"] if e["event"] == "resolved"]
    assert len(resolves) == 1


async def installation(client: Any) -> str:
    found: str = await client.app[STORE].installation_id()
    return found


async def full(client: Any, incident_id: int) -> dict[str, Any]:
    view: dict[str, Any] = await (
        await client.get(f"/api/v1/incidents/{incident_id}", headers=API)
    ).json()
    return view
