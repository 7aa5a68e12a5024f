"""A Slack post whose outcome was never recorded is found, not made again, when its delivery
comes round once more: the real slack_sdk client against the fake Slack over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.api.payload import WebhookPayload
from receiver.domain.delivery import Outcome
from receiver.domain.failures import DeliveryError
from receiver.metrics import Metrics
from receiver.notify.slack import SlackNotifier, SlackPager, slack_notifiers
from receiver.service import IncidentService
from receiver.service.rules import RulesHolder
from receiver.store.base import DeliveryOutcome, Effect, OutboxItem
from receiver.store.sqlite import SqliteStore
from tests.api.test_slack import SECRET, signed
from tests.api.test_slack_notify import CHANNELS, USERS
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, FakeClock, alert, wait_for, webhook
from tests.store.builders import messages

Client = TestClient[Any, web.Application]
TOKEN = "xoxb-receiver"
ALERTS = "#beta-alert"
TEAM = "#team-backend"  # the team of the default alert
LOOKUPS = (
    "conversations.history",
    "conversations.replies",
    "conversations.open",
    "conversations.list",
)


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=TOKEN, users=USERS, channels=CHANNELS, clock=clock) as fake:
        yield fake


class Recorded:
    """A notifier whose deliveries' effects are recorded as the worker records them: with
    the outcome, in the store, once the delivery returned."""

    def __init__(self, inner: SlackNotifier | SlackPager, store: SqliteStore, clock: FakeClock):
        self.inner, self.store, self.clock = inner, store, clock

    async def deliver(self, item: OutboxItem) -> list[Effect]:
        assert item.incident_id is not None  # handed what earlier deliveries recorded, as the
        prior = await self.store.prior_effects([item.incident_id])  # worker hands it
        effects = list(await self.inner.deliver(replace(item, prior=prior[item.incident_id])) or ())
        done = DeliveryOutcome(item.id, Outcome.SENT, effects=tuple(effects))
        await self.store.claim_outbox(self.clock(), 0, 60, [done])
        return effects


@dataclass
class Rig:
    """A store and service with the Slack notifiers, deliveries handed over by hand."""

    store: SqliteStore
    service: IncidentService
    notifier: Recorded
    pager: Recorded
    clock: FakeClock

    async def start(self) -> tuple[OutboxItem, OutboxItem]:
        """Open an incident for the default P1 alert and fire its first page; claim the
        announcement and the page."""
        payload = WebhookPayload.model_validate(webhook(alert()))
        await self.service.ingest(payload.domain_alerts())
        await self.service.fire_due_timers()
        items = await self.store.claim_outbox(self.clock(), 50, 60)
        [opened] = [i for i in items if i.channel == "slack"]
        [page] = [i for i in items if i.channel == "pager"]
        return opened, page

    async def acknowledged(self, opened: OutboxItem) -> OutboxItem:
        """Mark the announcement sent, acknowledge, and claim the Slack delivery of the ack."""
        assert opened.incident_id is not None
        await self.service.acknowledge(opened.incident_id, "kim")
        done = [DeliveryOutcome(opened.id, Outcome.SENT)]
        items = await self.store.claim_outbox(self.clock(), 50, 60, done)
        [ack] = [i for i in items if i.channel == "slack"]
        assert ack.kind == "incident.acknowledged"
        return ack


@pytest.fixture
async def rig(tmp_path: Path, slack: FakeSlack, clock: FakeClock) -> AsyncIterator[Rig]:
    store = SqliteStore(str(tmp_path / "redelivery.db"))
    await store.open()
    metrics = Metrics()
    rules = RulesHolder(SHIPPED_RULES, metrics)
    notifier, pager, _ = slack_notifiers(TOKEN, slack.url)
    try:
        service = IncidentService(store, rules, metrics, clock)
        recorded = Recorded(notifier, store, clock), Recorded(pager, store, clock)
        yield Rig(store, service, *recorded, clock)
    finally:
        await store.close()


def again(item: OutboxItem) -> OutboxItem:
    """The same delivery claimed a second time after its lease ran out."""
    return replace(item, claims=2)


def tag(message: dict[str, Any]) -> str:
    metadata: dict[str, Any] = message["metadata"]
    assert metadata["event_type"] == "alert_receiver_delivery"
    return str(metadata["event_payload"]["delivery"])


def top_level(slack: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [m for m in slack.posted_to(channel) if not m["thread_ts"]]


async def lost(deliver: Callable[[OutboxItem], Awaitable[object]], item: OutboxItem) -> None:
    """Deliver while the fake drops the answer to the post; the attempt fails retryably."""
    with pytest.raises(DeliveryError) as caught:
        await deliver(item)
    assert caught.value.retryable


async def test_first_deliveries_look_nothing_up_and_tag_every_post(
    rig: Rig, slack: FakeSlack
) -> None:
    opened, page = await rig.start()
    await rig.notifier.deliver(opened)
    await rig.pager.deliver(page)
    ack = await rig.acknowledged(opened)
    await rig.notifier.deliver(ack)
    assert all(slack.calls_to(method) == [] for method in LOOKUPS)
    [announcement] = top_level(slack, ALERTS)
    [reply] = [m for m in slack.posted_to(ALERTS) if m["thread_ts"]]
    [dm] = slack.dms_to("U0KIM")
    [mention] = slack.posted_to(TEAM)
    assert tag(announcement) == f"{opened.id}:alerts"
    assert tag(reply) == f"{ack.id}:thread"
    assert tag(dm) == f"{page.id}:dm"
    assert tag(mention) == f"{page.id}:mention"


async def test_announcement_whose_answer_was_lost_is_found(rig: Rig, slack: FakeSlack) -> None:
    opened, _ = await rig.start()
    slack.lose_next_answer(method="chat.postMessage")
    await lost(rig.notifier.deliver, opened)
    assert opened.incident_id is not None
    assert await messages(rig.store, opened.incident_id) == []  # the outcome was lost

    await rig.notifier.deliver(again(opened))
    [announcement] = top_level(slack, ALERTS)
    assert len(slack.calls_to("chat.postMessage")) == 1
    stored = await messages(rig.store, opened.incident_id)
    assert stored == [(announcement["channel_id"], announcement["ts"], "alerts")]
    [lookup] = slack.calls_to("conversations.history")
    assert lookup["channel"] == announcement["channel_id"]
    assert lookup["include_all_metadata"] in ("1", "true", True)
    assert float(lookup["oldest"]) < float(announcement["ts"])

    ack = await rig.acknowledged(opened)  # the found message is kept up to date
    await rig.notifier.deliver(ack)
    assert "Acknowledged by Kim Minjun" in str(FakeSlack.latest(announcement)["blocks"])


async def test_recorded_announcement_needs_no_lookup(rig: Rig, slack: FakeSlack) -> None:
    opened, _ = await rig.start()
    await rig.notifier.deliver(opened)
    await rig.notifier.deliver(again(opened))
    assert len(top_level(slack, ALERTS)) == 1
    assert all(slack.calls_to(method) == [] for method in LOOKUPS)


async def test_thread_reply_is_not_posted_twice(rig: Rig, slack: FakeSlack) -> None:
    opened, _ = await rig.start()
    await rig.notifier.deliver(opened)
    ack = await rig.acknowledged(opened)
    slack.lose_next_answer(method="chat.postMessage")
    await lost(rig.notifier.deliver, ack)
    await rig.notifier.deliver(again(ack))
    await rig.notifier.deliver(again(ack))  # and once more, after a completed redelivery
    [announcement] = top_level(slack, ALERTS)
    [reply] = [m for m in slack.posted_to(ALERTS) if m["thread_ts"]]
    assert reply["thread_ts"] == announcement["ts"]
    assert tag(reply) == f"{ack.id}:thread"
    lookups = slack.calls_to("conversations.replies")
    assert len(lookups) == 2 and lookups[0]["ts"] == announcement["ts"]
    assert slack.calls_to("conversations.history") == []


async def test_page_dm_whose_answer_was_lost_is_found(rig: Rig, slack: FakeSlack) -> None:
    opened, page = await rig.start()
    slack.lose_next_answer(method="chat.postMessage")
    await lost(rig.pager.deliver, page)
    assert page.incident_id is not None
    assert await messages(rig.store, page.incident_id) == []
    assert slack.posted_to(TEAM) == []  # the mention comes after the DM

    await rig.pager.deliver(again(page))
    [dm] = slack.dms_to("U0KIM")
    [mention] = slack.posted_to(TEAM)
    assert tag(mention) == f"{page.id}:mention"
    assert await messages(rig.store, page.incident_id) == [
        (dm["channel_id"], dm["ts"], "page:0:kim")
    ]
    [opened_dm] = slack.calls_to("conversations.open")
    assert opened_dm["users"] == "U0KIM"
    assert [c["channel"] for c in slack.calls_to("conversations.history")] == [
        dm["channel_id"],
        slack.channels[TEAM],
    ]

    await rig.notifier.deliver(opened)  # the found DM is updated on the ack like any other
    ack = await rig.acknowledged(opened)
    await rig.notifier.deliver(ack)
    assert "Acknowledged by Kim Minjun" in str(FakeSlack.latest(dm)["blocks"])


async def test_page_redelivered_after_both_posts_posts_nothing(rig: Rig, slack: FakeSlack) -> None:
    """Killed after the mention was posted but before the outcome was recorded."""
    _, page = await rig.start()
    await rig.pager.deliver(page)
    await rig.pager.deliver(again(page))
    [dm] = slack.dms_to("U0KIM")
    [mention] = slack.posted_to(TEAM)
    assert (tag(dm), tag(mention)) == (f"{page.id}:dm", f"{page.id}:mention")
    assert page.incident_id is not None
    assert await messages(rig.store, page.incident_id) == [
        (dm["channel_id"], dm["ts"], "page:0:kim")
    ]
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert slack.calls_to("conversations.open") == []  # the DM's id is known from the post


async def test_an_earlier_page_to_the_same_person_is_not_taken_for_this_one(
    rig: Rig, slack: FakeSlack
) -> None:
    _, page = await rig.start()
    await rig.pager.deliver(page)
    later = replace(page, id=page.id + 100, claims=2)  # another page, its first post lost
    await rig.pager.deliver(later)
    assert [tag(m) for m in slack.dms_to("U0KIM")] == [f"{page.id}:dm", f"{later.id}:dm"]
    assert [tag(m) for m in slack.posted_to(TEAM)] == [
        f"{page.id}:mention",
        f"{later.id}:mention",
    ]


@pytest.mark.parametrize(
    "fail",
    [
        lambda fake: fake.fail_next(503, method="conversations.history"),
        lambda fake: fake.fail_next(429, method="conversations.history"),
        # aiohttp sends an idempotent GET again once when the connection drops
        lambda fake: fake.drop_next(count=2, method="conversations.list"),
    ],
)
async def test_lookup_that_may_succeed_later_is_retried(
    rig: Rig, slack: FakeSlack, fail: Callable[[FakeSlack], None]
) -> None:
    opened, _ = await rig.start()
    fail(slack)
    with pytest.raises(DeliveryError) as caught:
        await rig.notifier.deliver(again(opened))
    assert caught.value.retryable
    assert slack.messages == []


async def test_lookup_refused_for_good_posts_anyway(rig: Rig, slack: FakeSlack) -> None:
    """Without the history scopes the check cannot be made: posting twice beats not at all."""
    opened, _ = await rig.start()
    slack.fail_next(200, error="missing_scope", method="conversations.list")
    await rig.notifier.deliver(again(opened))
    assert [tag(m) for m in top_level(slack, ALERTS)] == [f"{opened.id}:alerts"]


async def undelivered(client: Client) -> list[dict[str, Any]]:
    """Slack, pager and announcement deliveries not yet sent."""
    found = []
    for status in ("pending", "dead"):
        url = f"/api/v1/deliveries?status={status}"
        body = await (await client.get(url, headers=API)).json()
        found += [d for d in body["deliveries"] if d["channel"] in ("slack", "pager", "announce")]
    return found


async def test_lost_answers_through_the_worker(
    make_client: ClientFactory, slack: FakeSlack, clock: FakeClock
) -> None:
    """Slack posts a message but its answer is lost; the worker's retry finds it."""
    client = await make_client(
        slack_token=TOKEN, slack_api_url=slack.url, slack_signing_secret=SECRET
    )
    slack.lose_next_answer(method="chat.postMessage")
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200

    def posted() -> bool:
        return bool(top_level(slack, ALERTS) and slack.dms_to("U0KIM") and slack.posted_to(TEAM))

    for _ in range(100):
        if posted() and not await undelivered(client):
            break
        clock.advance(seconds=2)  # past each retry's backoff
        await asyncio.sleep(0.1)
    assert await undelivered(client) == []
    assert slack.calls_to("conversations.history")  # the retry looked before posting
    assert len(top_level(slack, ALERTS)) == 1
    assert len(slack.dms_to("U0KIM")) == 1 and len(slack.posted_to(TEAM)) == 1

    incident = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"][0]
    body, headers = signed("incident_ack", incident["id"], "U0KIM", clock.now.timestamp())
    assert (await client.post("/slack/interactions", data=body, headers=headers)).status == 200
    [dm] = slack.dms_to("U0KIM")
    [announcement] = top_level(slack, ALERTS)
    await wait_for(lambda: bool(dm["updates"]) and bool(announcement["updates"]))
