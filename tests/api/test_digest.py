"""The weekly digest through the app: one Slack message every Monday 09:00 (Asia/Seoul),
across restarts, replicas and downtime; the fake Slack speaks HTTP to the real client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.config import load_rules
from receiver.metrics import Metrics
from receiver.service.digest import weekly_digest
from receiver.service.rules import RulesHolder
from receiver.store import PostgresStore, SqliteStore, Store
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, T0, FakeClock, alert, resolved, wait_for, webhook
from tests.postgres import POSTGRES_URL, postgres_schema

CFG = load_rules(SHIPPED_RULES)
USERS = {p.slack_id: pid for pid, p in CFG.people.items() if p.slack_id}
CHANNELS = [CFG.channels.alerts, CFG.channels.announce, CFG.channels.digest,
            *(t.channel for t in CFG.teams.values())]  # fmt: skip
Client = TestClient[Any, web.Application]

# T0 is Thursday 26 November 2026, 10:00 in Seoul; the first digest is due on Monday.
DUE = datetime.fromisoformat("2026-11-30T09:00:00+09:00")
WEEK = timedelta(days=7)
SECOND = timedelta(seconds=1)


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(
        token="xoxb-receiver", users=USERS, channels=CHANNELS, clock=clock
    ) as fake:
        yield fake


async def receiver(make_client: ClientFactory, fake: FakeSlack, **kwargs: Any) -> Client:
    """An app on the test's SQLite file (or the given store) posting to the fake Slack."""
    return await make_client(slack_token="xoxb-receiver", slack_api_url=fake.url, **kwargs)


def digests(fake: FakeSlack) -> list[str]:
    """The digest messages posted to the digest channel, oldest first."""
    return [
        m["text"]
        for m in fake.posted_to(CFG.channels.digest)
        if str((m["metadata"] or {}).get("event_payload", {}).get("delivery", "")).endswith(
            ":digest.weekly"
        )
    ]


def week_to(text: str) -> str:
    """The end of the week a digest covers, as its first line gives it."""
    return text.splitlines()[0].split(" to ")[1]


async def settle() -> None:
    """Long enough for every loop (polling every 0.05 s) to have looked several times."""
    await asyncio.sleep(0.4)


async def post(client: Client, *alerts: dict[str, Any]) -> None:
    assert (await client.post("/webhook", json=webhook(*alerts), headers=AUTH)).status == 200


async def newest(client: Client) -> int:
    body = await (await client.get("/api/v1/incidents?limit=1", headers=API)).json()
    return int(body["incidents"][0]["id"])


async def act(client: Client, incident_id: int, action: str) -> None:
    url = f"/api/v1/incidents/{incident_id}/{action}"
    assert (await client.post(url, json={"by": "kim"}, headers=API)).status == 200


async def test_monday_digest_sums_up_the_week(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack)
    token = alert()  # P1 api, firing since T0
    await post(client, token)
    token_id = await newest(client)
    clock.advance(minutes=10)
    await act(client, token_id, "ack")
    clock.now = T0 + timedelta(hours=1)
    await post(client, resolved(token, clock.now))

    clock.now = T0 + timedelta(hours=2)  # P0 functional, first alert five minutes earlier
    await post(client, alert(alertname="ServiceDown", service="order-api",
                             starts=T0 + timedelta(hours=1, minutes=55)))  # fmt: skip
    down_id = await newest(client)
    clock.advance(minutes=20)  # five minutes past the 15m ack timeout
    await act(client, down_id, "ack")

    clock.now = T0 + timedelta(days=1)  # P3 network, never acknowledged
    await post(client, alert(alertname="HighNetworkLatency", service="edge", starts=clock.now))
    clock.now = T0 + timedelta(days=3)  # P2 performance, resolved by hand in time
    await post(client, alert(alertname="HighResponseTime", severity="warning", starts=clock.now))
    slow_id = await newest(client)
    clock.advance(hours=1)
    await act(client, slow_id, "resolve")

    clock.now = DUE - SECOND
    await settle()
    assert digests(slack) == []
    clock.now = DUE + SECOND
    await wait_for(lambda: len(digests(slack)) == 1)
    await settle()
    [text] = digests(slack)
    assert text == "\n".join(
        [
            "*Weekly incident digest*: Mon 23 Nov 09:00 to Mon 30 Nov 2026 09:00 KST",
            "*Opened:* 4 (P0 1, P1 1, P2 1, P3 1); "
            "by category: functional 1, performance 1, api 1, network 1",
            "*Resolved:* 2 (P1 1, P2 1); by category: performance 1, api 1",
            "*Still open:* 2",
            f"• #{down_id} [P0][functional] ServiceDown firing — order-api: acknowledged, "
            "open 3d 21h",
            f"• #{down_id + 1} [P3][network] HighNetworkLatency firing — edge: not acknowledged, "
            "open 2d 23h",
            "*Alert-to-ack* (median / worst):",
            "• P0: 25m / 25m (1 incident)",
            "• P1: 10m / 10m (1 incident)",
            "*Ack SLA breaches:* 2",
            f"• #{down_id} [P0][functional] ServiceDown firing — order-api: "
            "acknowledged 5m after the 15m ack timeout",
            f"• #{down_id + 1} [P3][network] HighNetworkLatency firing — edge: "
            "not acknowledged within the 1d ack timeout",
            # each phase from the end of the one before: the P0's ack came late and nothing
            # after it; the P3's ack is past due (its mitigation is due after the week);
            # the P1 has no postmortem
            "*Phases* (median time, deadlines missed):",
            "• ack: 17m 30s (2 done); 2 missed (P0 1, P3 1)",
            "• mitigate: none done; 1 missed (P0 1)",
            "• resolve: 55m (2 done); 1 missed (P0 1)",
            "• report: none done; 1 missed (P1 1)",
        ]
    )
    deliveries = await (await client.get("/api/v1/deliveries", headers=API)).json()
    [row] = [d for d in deliveries["deliveries"] if d["channel"] == "digest"]
    assert (row["kind"], row["incident_id"], row["status"]) == ("digest.weekly", None, "sent")

    clock.now = DUE + WEEK - SECOND  # nothing until the next Monday
    await settle()
    assert len(digests(slack)) == 1
    clock.now = DUE + WEEK
    await wait_for(lambda: len(digests(slack)) == 2)
    assert week_to(digests(slack)[1]) == "Mon 7 Dec 2026 09:00 KST"
    assert "*Opened:* none" in digests(slack)[1]


async def test_a_restart_after_the_due_time_does_not_send_it_again(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    first = await receiver(make_client, slack)
    await post(first, alert())
    clock.now = DUE + SECOND
    await wait_for(lambda: len(digests(slack)) == 1)
    await first.close()

    clock.now = DUE + timedelta(minutes=5)
    second = await receiver(make_client, slack)  # the same settings: the same database file
    await settle()
    assert len(digests(slack)) == 1
    clock.now = DUE + WEEK + SECOND
    await wait_for(lambda: len(digests(slack)) == 2)
    await settle()
    assert [week_to(t) for t in digests(slack)] == [
        "Mon 30 Nov 2026 09:00 KST",
        "Mon 7 Dec 2026 09:00 KST",
    ]
    await second.close()


async def test_a_digest_queued_before_a_restart_is_posted_once_after_it(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    first = await receiver(make_client, slack)
    slack.down()  # the digest is committed to the outbox but cannot be posted yet
    clock.now = DUE + SECOND

    async def queued() -> bool:
        body = await (await first.get("/api/v1/deliveries?status=pending", headers=API)).json()
        return any(d["channel"] == "digest" for d in body["deliveries"])

    for _ in range(100):
        if await queued():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the digest was never queued")
    await first.close()

    slack.up()
    clock.now = DUE + timedelta(minutes=10)  # past any retry backoff
    second = await receiver(make_client, slack)
    await wait_for(lambda: len(digests(slack)) == 1)
    await settle()
    assert len(digests(slack)) == 1
    await second.close()


@pytest.mark.parametrize("weeks_down", [1, 3])
async def test_a_missed_digest_is_sent_once_on_return(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock, weeks_down: int
) -> None:
    first = await receiver(make_client, slack)  # Thursday: the first digest is due Monday
    await post(first, alert())
    await settle()
    await first.close()

    # Down across the due time(s); back on a Tuesday morning.
    last_missed = DUE + (weeks_down - 1) * WEEK
    clock.now = last_missed + timedelta(days=1, hours=1)
    second = await receiver(make_client, slack)
    await wait_for(lambda: len(digests(slack)) == 1)
    await settle()
    [text] = digests(slack)
    assert week_to(text) == f"{last_missed:%a} {last_missed.day} {last_missed:%b %Y %H:%M} KST"
    assert "*Still open:* 1" in text

    clock.now = last_missed + WEEK - SECOND
    await settle()
    assert len(digests(slack)) == 1
    clock.now = last_missed + WEEK
    await wait_for(lambda: len(digests(slack)) == 2)
    await second.close()


async def test_a_first_start_after_monday_waits_for_the_next_one(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    clock.now = DUE + timedelta(days=1)  # never started before: no week to catch up on
    client = await receiver(make_client, slack)
    await settle()
    assert digests(slack) == []
    clock.now = DUE + WEEK
    await wait_for(lambda: len(digests(slack)) == 1)
    assert week_to(digests(slack)[0]) == "Mon 7 Dec 2026 09:00 KST"
    await client.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def shared(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """Where two replicas keep their state: the test's SQLite file (None) or a fresh
    PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    async with postgres_schema() as schema:
        yield schema


def replica_store(schema: str | None) -> Store | None:
    return PostgresStore(POSTGRES_URL, schema=schema) if schema else None


async def test_two_replicas_send_one_digest_a_week(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock, shared: str | None
) -> None:
    a = await receiver(make_client, slack, store=replica_store(shared))
    b = await receiver(make_client, slack, store=replica_store(shared))
    await post(a, alert())
    await post(b, alert(alertname="HighNetworkLatency", service="edge"))
    for week in range(3):
        clock.now = DUE + week * WEEK + SECOND
        await wait_for(lambda: len(digests(slack)) == week + 1)  # noqa: B023
        await settle()
        assert len(digests(slack)) == week + 1
    body = await (await a.get("/api/v1/deliveries", headers=API)).json()
    assert [d["kind"] for d in body["deliveries"] if d["channel"] == "digest"] == [
        "digest.weekly"
    ] * 3
    assert "*Opened:* 2 (P1 1, P3 1)" in digests(slack)[0]


async def test_replicas_racing_for_the_same_due_time_one_sends(
    tmp_path: Any, clock: FakeClock, shared: str | None
) -> None:
    stores: list[Store] = [
        PostgresStore(POSTGRES_URL, schema=shared)
        if shared
        else SqliteStore(str(tmp_path / "r.db"))
        for _ in range(2)
    ]
    for store in stores:
        await store.open()
    try:
        rules = RulesHolder(SHIPPED_RULES, Metrics())
        senders = [weekly_digest(store, rules, clock) for store in stores]
        assert [await s.send_due() for s in senders] == [0, 0]  # schedules the first Monday
        for week in range(5):
            clock.now = DUE + week * WEEK
            sent = await asyncio.gather(*(s.send_due() for s in senders))
            assert sorted(sent) == [0, 1]
            assert [await s.send_due() for s in senders] == [0, 0]
        rows = await stores[0].deliveries(None, None, 100)
        assert [d.kind for d in rows] == ["digest.weekly"] * 5
    finally:
        for store in stores:
            await store.close()
