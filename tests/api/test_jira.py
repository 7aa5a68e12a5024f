"""The JIRA notifier end to end: webhook -> outbox -> real `jira` client -> fake JIRA over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.api.keys import STORE
from receiver.metrics import FAILURE_REASONS
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.helpers import T0, FakeClock, alert, metric, resolved, wait_for, webhook

JIRA_USER, JIRA_TOKEN = "receiver-bot", "jira-api-token"
Client = TestClient[Any, web.Application]


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    async with FakeJira(user=JIRA_USER, token=JIRA_TOKEN) as fake:
        yield fake


@pytest.fixture
async def cloud_jira() -> AsyncIterator[FakeJira]:
    async with FakeJira(cloud=True, user=JIRA_USER, token=JIRA_TOKEN) as fake:
        yield fake


def receiver_for(make_client: ClientFactory) -> Callable[[FakeJira], Awaitable[Client]]:
    async def build(fake: FakeJira) -> Client:
        return await make_client(
            jira_url=fake.url, jira_user=JIRA_USER, jira_token=JIRA_TOKEN, coalesce_seconds=60
        )

    return build


async def post(client: Client, *alerts: dict[str, Any]) -> None:
    resp = await client.post("/webhook", json=webhook(*alerts), headers=AUTH)
    assert resp.status == 200, await resp.text()


def incident_issues(fake: FakeJira) -> list[dict[str, Any]]:
    """The incidents' own issues, without postmortems."""
    return [i for i in fake.issues.values() if i["fields"]["issuetype"] == "Incident"]


def creates(fake: FakeJira) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path == "/rest/api/2/issue"]


def updates(fake: FakeJira, key: str) -> list[str]:
    """The issue's comments without the paging ones (the escalation timers add those)."""
    return [c for c in fake.comments(key) if not c.startswith(("Paged", "Escalated"))]


async def incident_with_key(client: Client) -> dict[str, Any]:
    """The newest incident, once its JIRA key is recorded (bounded wait)."""
    for _ in range(200):
        body = await (await client.get("/api/v1/incidents", headers=API)).json()
        found: dict[str, Any] = body["incidents"][0]
        if found["jira_key"]:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the incident never got its JIRA key")


async def test_p1_alert_opens_one_well_formed_issue(
    make_client: ClientFactory, jira: FakeJira
) -> None:
    client = await receiver_for(make_client)(jira)
    await post(client, alert(annotations={"summary": "KIS token refresh failing"}))
    await wait_for(lambda: len(jira.issues) == 1)
    [issue] = jira.issues.values()
    fields = issue["fields"]
    assert fields["summary"] == "[P1][api] KIS token refresh failing — kis-gateway"
    assert fields["priority"] == "High" and fields["project"] == "OPS"
    installation = await client.app[STORE].installation_id()
    assert re.fullmatch("[0-9a-f]{12}", installation)
    assert f"receiver-incident-{installation}-1" in fields["labels"]
    inc = await incident_with_key(client)
    assert inc["jira_key"] == issue["key"]
    assert inc["jira_url"] == f"{jira.url}/browse/{issue['key']}"


async def test_replays_and_concurrent_webhooks_give_one_issue(
    make_client: ClientFactory, jira: FakeJira
) -> None:
    client = await receiver_for(make_client)(jira)
    body = webhook(alert(instance="a"), alert(instance="b"))
    results = await asyncio.gather(
        *(client.post("/webhook", json=body, headers=AUTH) for _ in range(20))
    )
    assert {r.status for r in results} == {200}
    for _ in range(30):
        await post(client, alert(instance="a"))
    await wait_for(lambda: len(jira.issues) == 1)
    await asyncio.sleep(0.3)
    assert len(jira.issues) == 1
    assert len(creates(jira)) == 1


async def test_crash_after_create_finds_the_issue_instead_of_a_second(
    make_client: ClientFactory, jira: FakeJira, clock: FakeClock
) -> None:
    jira.fail_next_create_after_commit(mode="error", status=500)
    client = await receiver_for(make_client)(jira)
    await post(client, alert())
    await wait_for(lambda: len(jira.issues) == 1)
    clock.advance(seconds=10)  # past the retry's backoff
    assert (await incident_with_key(client))["jira_key"] == next(iter(jira.issues))
    assert len(jira.issues) == 1
    label = f"receiver-incident-{await client.app[STORE].installation_id()}-1"
    assert f'project = "OPS" AND labels = "{label}"' in jira.jql_log


async def test_a_second_installation_never_takes_the_first_ones_issues(
    make_client: ClientFactory, jira: FakeJira, tmp_path: Path, clock: FakeClock
) -> None:
    """Two receivers with their own databases (a reset, a move to another store, staging
    beside production) on one JIRA: each incident gets an issue of its own, and a retried
    delivery of the second finds its own issue, not the first installation's."""
    first = await receiver_for(make_client)(jira)
    await post(first, alert())
    await wait_for(lambda: len(jira.issues) == 1)
    [earlier] = jira.issues
    await post(first, resolved(alert(), T0))
    await wait_for(lambda: any("Resolved" in c for c in jira.comments(earlier)))
    comments_before = len(jira.comments(earlier))

    second_dir = tmp_path / "second"
    second_dir.mkdir()
    jira.fail_next_create_after_commit(mode="error", status=500)  # the retry must search
    second = await make_client(
        jira_url=jira.url,
        jira_user=JIRA_USER,
        jira_token=JIRA_TOKEN,
        database_url=f"sqlite:///{second_dir}/receiver.db",
    )
    assert await second.app[STORE].installation_id() != await first.app[STORE].installation_id()
    await post(second, alert(instance="again"))
    await wait_for(lambda: len(incident_issues(jira)) == 2)
    clock.advance(seconds=10)  # past the retry's backoff
    inc = await incident_with_key(second)
    assert inc["id"] == 1 and inc["jira_key"] != earlier
    await asyncio.sleep(0.3)  # a wrong match would comment on the first issue meanwhile
    assert len(incident_issues(jira)) == 2
    assert len(jira.comments(earlier)) == comments_before


async def test_outage_then_recovery_delivers_everything_in_order(
    make_client: ClientFactory, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver_for(make_client)(jira)
    jira.down()
    a, b = alert(service="kis-gateway"), alert(alertname="ServiceDown", service="order-api")
    await post(client, a)
    await post(client, b)
    clock.advance(minutes=1)
    await post(client, resolved(a, clock.now))
    for _ in range(5):  # JIRA stays down through several retries
        clock.advance(minutes=2)
        await asyncio.sleep(0.2)
    assert jira.issues == {}
    jira.up()
    for _ in range(10):
        clock.advance(minutes=5)
        await asyncio.sleep(0.2)
        if len(jira.issues) == 3 and all(
            i["status"] == "Done" for i in jira.issues.values() if "P1" in i["fields"]["summary"]
        ):
            break
    # the two incidents' issues, and the resolved P1's postmortem
    assert sorted(i["fields"]["issuetype"] for i in jira.issues.values()) == [
        "Incident",
        "Incident",
        "Task",
    ]
    incidents = {k: i for k, i in jira.issues.items() if i["fields"]["issuetype"] == "Incident"}
    kis = next(i for i in incidents.values() if "[P1]" in i["fields"]["summary"])
    down = next(i for i in incidents.values() if "[P0]" in i["fields"]["summary"])
    assert kis["status"] == "Done"
    assert updates(jira, kis["key"])[-1].startswith("Resolved — all alerts resolved")
    assert down["status"] == "Open" and down["fields"]["priority"] == "Highest"
    metrics = await (await client.get("/metrics")).text()
    retried = [
        metric(metrics, "receiver_notifications_total", channel="jira", outcome="retried", reason=r)
        for r in FAILURE_REASONS
    ]
    assert sum(n or 0 for n in retried) >= 2


async def test_429_waits_for_retry_after(
    make_client: ClientFactory, jira: FakeJira, clock: FakeClock
) -> None:
    jira.fail_next(429, retry_after=120, path_contains="/search")
    client = await receiver_for(make_client)(jira)
    await post(client, alert())
    await wait_for(lambda: bool(jira.jql_log) or len(jira.requests) > 1)
    await asyncio.sleep(0.3)
    pending = await (await client.get("/api/v1/deliveries?status=pending", headers=API)).json()
    jira_rows = [
        d
        for d in pending["deliveries"]
        if d["channel"] == "jira" and d["kind"] == "incident.opened"
    ]
    assert jira_rows and "429" in jira_rows[0]["last_error"]
    clock.advance(seconds=100)
    await asyncio.sleep(0.3)
    assert jira.issues == {}
    clock.advance(seconds=25)
    await wait_for(lambda: len(jira.issues) == 1)


async def test_permanent_400_is_dead_lettered_with_jiras_message(
    make_client: ClientFactory, jira: FakeJira
) -> None:
    jira.fail_next(400, path_contains="/rest/api/2/issue", method="POST")
    client = await receiver_for(make_client)(jira)
    await post(client, alert())
    dead: list[dict[str, Any]] = []
    for _ in range(100):
        body = await (await client.get("/api/v1/deliveries?status=dead", headers=API)).json()
        dead = body["deliveries"]
        if dead:
            break
        await asyncio.sleep(0.05)
    assert [(d["channel"], d["kind"]) for d in dead] == [("jira", "incident.opened")]
    assert dead[0]["last_error"].startswith("JIRA answered 400")
    metrics = await (await client.get("/metrics")).text()
    labels = {"channel": "jira", "outcome": "failed", "reason": "client_error"}
    assert metric(metrics, "receiver_notifications_total", **labels) == 1


async def test_resolve_then_refire_transitions_done_and_reopen(
    make_client: ClientFactory, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver_for(make_client)(jira)
    a = alert()
    await post(client, a)
    clock.advance(minutes=5)
    await post(client, resolved(a, clock.now))
    await wait_for(lambda: any(i["status"] == "Done" for i in jira.issues.values()))
    clock.advance(hours=1)
    await post(client, alert(starts=clock.now))
    await wait_for(lambda: any(i["status"] == "Reopened" for i in jira.issues.values()))
    [issue] = incident_issues(jira)  # and the first resolve's postmortem
    texts = updates(jira, issue["key"])
    assert texts[0].startswith("Resolved") and "fired again" in texts[1]


async def test_cloud_searches_through_the_enhanced_endpoint(
    make_client: ClientFactory, cloud_jira: FakeJira
) -> None:
    client = await receiver_for(make_client)(cloud_jira)
    await post(client, alert())
    await wait_for(lambda: len(cloud_jira.issues) == 1)
    searched = [r.path for r in cloud_jira.requests if "search" in r.path]
    assert searched and all(p.endswith("/search/jql") for p in searched)


async def test_storm_of_joins_is_one_comment_per_window(
    make_client: ClientFactory, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver_for(make_client)(jira)
    await post(client, alert(instance="first"))
    await wait_for(lambda: len(jira.issues) == 1)
    for n in range(10):
        await post(client, alert(instance=f"joiner-{n}"))
    await asyncio.sleep(0.3)
    [issue] = jira.issues.values()
    assert updates(jira, issue["key"]) == []  # held for the coalescing window
    clock.advance(seconds=61)
    await wait_for(lambda: len(updates(jira, issue["key"])) == 1)
    await asyncio.sleep(0.2)
    [only] = updates(jira, issue["key"])
    assert only.startswith("10 more alert(s) joined this incident")


async def test_severity_upgrade_updates_priority(
    make_client: ClientFactory, jira: FakeJira
) -> None:
    client = await receiver_for(make_client)(jira)
    warn = alert(alertname="HighResponseTime", service="order-api", severity="warning")
    await post(client, warn)
    await wait_for(lambda: len(jira.issues) == 1)
    crit = alert(alertname="HighResponseTime", service="order-api", severity="critical", pod="2")
    await post(client, crit)
    [issue] = jira.issues.values()
    await wait_for(lambda: issue["fields"]["priority"] == "High")
    assert any("Severity raised from P2 to P1" in c for c in updates(jira, issue["key"]))


async def test_missing_transition_is_counted_not_retried(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    from tests.fakes.jira import Transition

    only_close = {"Open": [Transition("71", "Close", "Closed")], "Closed": []}
    async with FakeJira(workflow=only_close, user=JIRA_USER, token=JIRA_TOKEN) as fake:
        client = await receiver_for(make_client)(fake)
        a = alert()
        await post(client, a)
        clock.advance(minutes=1)
        await post(client, resolved(a, clock.now))
        await wait_for(
            lambda: any(c.startswith("Resolved") for i in fake.issues for c in updates(fake, i))
        )
        for _ in range(100):
            metrics = await (await client.get("/metrics")).text()
            if metric(metrics, "receiver_jira_missing_transitions_total", transition="Done"):
                break
            await asyncio.sleep(0.05)
        assert metric(metrics, "receiver_jira_missing_transitions_total", transition="Done") == 1
        [issue] = incident_issues(fake)
        assert issue["status"] == "Open"
        for _ in range(100):  # the postmortem follows the resolve; then nothing is left
            url = "/api/v1/deliveries?status=pending"
            pending = await (await client.get(url, headers=API)).json()
            if not pending["deliveries"]:
                break
            await asyncio.sleep(0.05)
        assert pending["deliveries"] == []  # nothing keeps retrying


async def test_personal_access_token_as_bearer_when_no_user(make_client: ClientFactory) -> None:
    async with FakeJira(token="server-pat") as fake:
        client = await make_client(jira_url=fake.url, jira_token="server-pat")
        await post(client, alert())
        # The fake refuses every request without the token, so an issue proves the bearer.
        await wait_for(lambda: len(fake.issues) == 1)


async def test_comment_whose_answer_was_lost_is_not_posted_twice(
    make_client: ClientFactory, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver_for(make_client)(jira)
    a = alert()
    await post(client, a)
    await wait_for(lambda: len(jira.issues) == 1)
    [key] = jira.issues
    await wait_for(lambda: any(c.startswith("Paged") for c in jira.comments(key)))
    jira.fail_next_comment_after_commit(502)  # JIRA stores it, the proxy answers 502
    clock.advance(minutes=1)
    await post(client, resolved(a, clock.now))
    [issue] = jira.issues.values()
    await wait_for(lambda: len(updates(jira, issue["key"])) == 1)
    clock.advance(seconds=10)  # the retry comes, finds its comment, and only transitions
    await wait_for(lambda: issue["status"] == "Done")
    [only] = updates(jira, issue["key"])
    assert only.startswith("Resolved — all alerts resolved")
    assert re.search(r"\n\n_alert receiver · delivery \d+_$", only)


async def test_configured_cloud_skips_detection(
    make_client: ClientFactory, cloud_jira: FakeJira
) -> None:
    client = await make_client(
        jira_url=cloud_jira.url,
        jira_user=JIRA_USER,
        jira_token=JIRA_TOKEN,
        jira_deployment="cloud",
    )
    await post(client, alert())
    await wait_for(lambda: len(cloud_jira.issues) == 1)
    assert not cloud_jira.requests_to("GET", "serverInfo")
    assert cloud_jira.requests_to("GET", "/search/jql") or cloud_jira.requests_to(
        "POST", "/search/jql"
    )


async def test_worker_killed_after_the_create_call_leaves_one_issue(
    tmp_path: Path, jira: FakeJira, clock: FakeClock
) -> None:
    """The worker dies while JIRA holds the answer to a create it has already done; the
    delivery is claimed again after its lease and finds the issue by its label."""
    from receiver.api.payload import WebhookPayload
    from receiver.metrics import Metrics
    from receiver.notify.base import Notifier
    from receiver.notify.jira import JiraNotifier, LibraryJira, jira_connector
    from receiver.outbox.worker import OutboxWorker
    from receiver.service import IncidentService
    from receiver.service.rules import RulesHolder
    from receiver.store.sqlite import SqliteStore
    from tests.fakes.notifiers import RecordingNotifier
    from tests.helpers import SHIPPED_RULES

    store = SqliteStore(str(tmp_path / "kill.db"))
    await store.open()
    metrics = Metrics()
    rules = RulesHolder(SHIPPED_RULES, metrics)

    def worker() -> OutboxWorker:
        connect = jira_connector(jira.url, JIRA_USER, JIRA_TOKEN, timeout=30)
        notifier = JiraNotifier(LibraryJira(connect), metrics)
        notifiers: dict[str, Notifier] = {"jira": notifier, "slack": RecordingNotifier()}
        return OutboxWorker(store, notifiers, metrics, clock, poll_seconds=0.02)

    try:
        payload = WebhookPayload.model_validate(webhook(alert()))
        await IncidentService(store, rules, metrics, clock).ingest(payload.domain_alerts())
        jira.fail_next_create_after_commit(mode="hang", hang_seconds=5)
        first = asyncio.create_task(worker().run())
        await wait_for(lambda: len(jira.issues) == 1)
        first.cancel()  # the process dies; its claim stays until the lease runs out
        with contextlib.suppress(asyncio.CancelledError):
            await first
        clock.advance(seconds=121)
        second = asyncio.create_task(worker().run())
        try:
            for _ in range(200):
                incident = await store.get_incident(1)
                if incident and incident.jira_key:
                    break
                await asyncio.sleep(0.05)
        finally:
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second
        assert incident is not None and incident.jira_key == next(iter(jira.issues))
        assert len(jira.issues) == 1
        assert len(creates(jira)) == 1
    finally:
        await store.close()
