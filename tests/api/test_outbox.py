"""Outbox delivery after commit: order, retry with backoff, Retry-After, dead letters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import structlog
from prometheus_client import generate_latest

from receiver.api.payload import WebhookPayload
from receiver.domain.failures import DeliveryError, is_retryable_status
from receiver.metrics import Metrics
from receiver.notify.base import Notifier
from receiver.outbox.policy import backoff_delay
from receiver.outbox.worker import OutboxWorker
from receiver.service import IncidentService
from receiver.service.loops import stop_within
from receiver.service.rules import RulesHolder
from receiver.store.base import OutboxItem
from receiver.store.sqlite import SqliteStore
from tests.conftest import AUTH
from tests.fakes.notifiers import RecordingNotifier
from tests.helpers import SHIPPED_RULES, FakeClock, metric, resolved, wait_for, webhook
from tests.helpers import alert as any_alert


def alert(**labels: str) -> dict[str, object]:
    """A P3 alert: JIRA and Slack traffic only, no page and no announcement."""
    return any_alert(**cast(dict[str, Any], {"alertname": "HighNetworkLatency", **labels}))


class Rig:
    """A service and a worker over one store, driven step by step with a fake clock."""

    def __init__(self, store: SqliteStore, clock: FakeClock) -> None:
        self.clock = clock
        self.metrics = Metrics()
        self.store = store
        self.jira = RecordingNotifier()
        self.slack = RecordingNotifier()
        rules = RulesHolder(SHIPPED_RULES, self.metrics)
        self.service = IncidentService(store, rules, self.metrics, clock)
        self.worker = OutboxWorker(
            store,
            {"jira": self.jira, "slack": self.slack},
            self.metrics,
            clock,
            rng=random.Random(7),
        )

    async def post(self, *alerts: dict[str, object]) -> None:
        payload = WebhookPayload.model_validate(webhook(*alerts))
        await self.service.ingest(payload.domain_alerts())

    def metric(self, name: str, **labels: str) -> float | None:
        return metric(generate_latest(self.metrics.registry).decode(), name, **labels)


@pytest.fixture
async def rig(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Rig]:
    store = SqliteStore(str(tmp_path / "outbox.db"))
    await store.open()
    yield Rig(store, clock)
    await store.close()


def kinds(notifier: RecordingNotifier) -> list[str]:
    return [item.kind for item in notifier.delivered]


async def test_deliveries_follow_the_incident_in_order(rig: Rig, clock: FakeClock) -> None:
    a = alert()
    await rig.post(a)
    clock.advance(minutes=1)
    await rig.post(a, alert(instance="b"))
    clock.advance(minutes=1)
    await rig.post(resolved(a, clock.now), resolved(alert(instance="b"), clock.now))
    while await rig.worker.run_once():
        pass
    assert kinds(rig.jira) == ["incident.opened", "incident.alerts_joined", "incident.resolved"]
    assert kinds(rig.slack) == ["incident.opened", "incident.resolved"]
    sent = rig.metric("receiver_notifications_total", channel="jira", outcome="sent", reason="none")
    assert sent == 3


async def test_folded_joins_carry_counts_and_leave_fingerprints_to_the_timeline(
    rig: Rig, clock: FakeClock
) -> None:
    await rig.post(alert())
    clock.advance(seconds=1)
    await rig.post(alert(instance="b"), alert(instance="c"))
    clock.advance(seconds=1)
    await rig.post(alert(instance="d"))
    clock.advance(minutes=1)
    while await rig.worker.run_once():
        pass
    [joined] = [item for item in rig.jira.delivered if item.kind == "incident.alerts_joined"]
    assert joined.payload["coalesced"] == 2
    events = joined.payload["events"]
    assert [(e["event"], e["count"]) for e in events] == [
        ("alerts_joined", 2),
        ("alerts_joined", 1),
    ]
    assert all("fingerprints" not in e for e in events)
    assert joined.incident_id is not None
    timeline = await rig.store.timeline(joined.incident_id)
    fingerprints = [e.data["fingerprints"] for e in timeline if e.event == "alerts_joined"]
    assert [len(fps) for fps in fingerprints] == [2, 1]


async def test_retryable_failure_backs_off_and_keeps_later_items_waiting(
    rig: Rig, clock: FakeClock
) -> None:
    rig.jira.fail_next(DeliveryError("503 from JIRA", retryable=True))
    a = alert()
    await rig.post(a)
    clock.advance(seconds=1)
    await rig.post(resolved(a, clock.now))
    await rig.worker.run_once()
    # Slack went out; JIRA's open failed and its resolve waits behind it.
    assert kinds(rig.slack) == ["incident.opened"]  # its resolve waits for the open to go
    assert rig.jira.delivered == []
    assert await rig.worker.run_once() == 1
    assert kinds(rig.slack) == ["incident.opened", "incident.resolved"]
    assert rig.jira.delivered == []  # not due yet
    clock.advance(seconds=5)
    while await rig.worker.run_once():
        pass
    assert kinds(rig.jira) == ["incident.opened", "incident.resolved"]
    labels = {"channel": "jira", "outcome": "retried", "reason": "server_error"}
    assert rig.metric("receiver_notifications_total", **labels) == 1
    pending, _ = await rig.store.outbox_stats(clock.now)
    assert pending == 0


async def test_retry_after_is_honoured(rig: Rig, clock: FakeClock) -> None:
    rig.jira.fail_next(DeliveryError("429", retryable=True, retry_after=120))
    await rig.post(alert())
    await rig.worker.run_once()
    clock.advance(seconds=119)
    await rig.worker.run_once()
    assert rig.jira.delivered == []
    clock.advance(seconds=2)
    await rig.worker.run_once()
    assert kinds(rig.jira) == ["incident.opened"]


async def test_permanent_failure_is_dead_lettered_and_visible(rig: Rig, clock: FakeClock) -> None:
    rig.jira.fail_next(DeliveryError("400: priority 'Urgent' is not valid", retryable=False))
    await rig.post(alert())
    await rig.worker.run_once()
    await rig.worker.flush()
    dead = await rig.store.deliveries("dead", None, 10)
    assert [(d.channel, d.kind) for d in dead] == [("jira", "incident.opened")]
    assert dead[0].last_error == "400: priority 'Urgent' is not valid"
    labels = {"channel": "jira", "outcome": "failed", "reason": "client_error"}
    assert rig.metric("receiver_notifications_total", **labels) == 1
    assert rig.jira.attempts == 1


async def test_retryable_failures_past_max_age_are_dead_lettered(
    rig: Rig, clock: FakeClock
) -> None:
    rig.worker.max_age = timedelta(minutes=10)
    rig.jira.fail_next(*[DeliveryError("timeout", retryable=True) for _ in range(100)])
    await rig.post(alert())
    for _ in range(40):
        await rig.worker.run_once()
        clock.advance(seconds=60)
    dead = await rig.store.deliveries("dead", None, 10)
    assert len(dead) == 1 and dead[0].last_error == "timeout"
    assert 5 <= rig.jira.attempts <= 12  # backoff spaced the attempts out


async def test_crashed_claim_is_picked_up_after_the_lease(rig: Rig, clock: FakeClock) -> None:
    await rig.post(alert())
    claimed = await rig.store.claim_outbox(clock.now, 10, lease_seconds=60)
    assert len(claimed) == 2  # a worker took them and died before recording anything
    assert await rig.worker.run_once() == 0
    clock.advance(seconds=61)
    await rig.worker.run_once()
    assert kinds(rig.jira) == ["incident.opened"]


class HangingNotifier:
    """Takes a delivery and never answers, like a JIRA that stopped responding."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def deliver(self, item: OutboxItem) -> None:
        self.started.set()
        await asyncio.Event().wait()


async def test_shutdown_records_what_was_sent_and_releases_the_rest(
    rig: Rig, clock: FakeClock
) -> None:
    """A stopping worker gives deliveries a grace period, records the finished ones and
    drops its claim on the others, so the next worker takes them without a lease wait."""
    await rig.post(alert())
    hanging = HangingNotifier()
    first = OutboxWorker(
        rig.store, {"jira": hanging, "slack": rig.slack}, rig.metrics, clock, poll_seconds=0.02
    )
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(hanging.started.wait(), 5)
    await wait_for(lambda: len(rig.slack.delivered) == 1)
    await stop_within(first, task, grace_seconds=0.1)
    assert task.done()

    await rig.worker.run_once()  # same instant: no lease has run out
    assert kinds(rig.jira) == ["incident.opened"]
    assert rig.jira.delivered[0].maybe_delivered  # the first attempt may have reached JIRA
    assert kinds(rig.slack) == ["incident.opened"]  # recorded as sent, not sent again
    await rig.worker.flush()
    deliveries = await rig.store.deliveries(None, None, 10)
    assert sorted(d.status for d in deliveries) == ["sent", "sent"]


async def test_shutdown_lets_a_delivery_under_way_finish(rig: Rig, clock: FakeClock) -> None:
    await rig.post(alert())
    gate = asyncio.Event()

    class Slow(RecordingNotifier):
        async def deliver(self, item: OutboxItem) -> None:
            await gate.wait()
            await super().deliver(item)

    slow = Slow()
    worker = OutboxWorker(
        rig.store, {"jira": slow, "slack": rig.slack}, rig.metrics, clock, poll_seconds=0.02
    )
    task = asyncio.create_task(worker.run())
    await wait_for(lambda: len(rig.slack.delivered) == 1)
    stopping = asyncio.create_task(stop_within(worker, task, grace_seconds=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waiting for the delivery under way
    gate.set()
    await asyncio.wait_for(stopping, 5)
    assert kinds(slow) == ["incident.opened"]
    deliveries = await rig.store.deliveries(None, None, 10)
    assert sorted(d.status for d in deliveries) == ["sent", "sent"]
    assert await rig.worker.run_once() == 0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_status_classification(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_backoff_grows_with_jitter_and_respects_retry_after() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng=rng) for n in range(12)]
    for n, d in enumerate(delays):
        ceiling = min(300.0, 2.0**n)
        assert ceiling / 2 <= d <= ceiling
    assert backoff_delay(0, retry_after=30, rng=rng) == 30
    assert len({round(backoff_delay(5, rng=rng), 6) for _ in range(20)}) > 1


async def test_worker_runs_in_the_app_after_commit(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from receiver.app import create_app
    from tests.conftest import make_settings

    jira, slack, pager = RecordingNotifier(), RecordingNotifier(), RecordingNotifier()
    announce = RecordingNotifier()
    notifiers: dict[str, Notifier] = {
        "jira": jira,
        "slack": slack,
        "pager": pager,
        "announce": announce,
    }
    # The fake clock stands at the alert's start: who is on call depends on the date.
    app = create_app(make_settings(tmp_path), notifiers=notifiers, clock=FakeClock())
    async with TestClient(TestServer(app)) as client:
        p1 = webhook(any_alert())
        assert (await client.post("/webhook", json=p1, headers=AUTH)).status == 200
        for _ in range(100):
            if (
                len(jira.delivered) == 2
                and slack.delivered
                and pager.delivered
                and announce.delivered
            ):
                break
            await asyncio.sleep(0.02)
    assert kinds(jira)[0] == "incident.opened" and kinds(slack) == ["incident.opened"]
    assert kinds(announce) == ["announce.opened"]  # a P1 is announced to beta testers
    # The P1 pages its on-call at once: a page to the pager, its note on the JIRA issue.
    assert [p.payload["person"] for p in pager.delivered] == ["kim"]
    assert kinds(jira) == ["incident.opened", "incident.escalated"]


async def test_workers_are_woken_only_for_what_is_due_now(tmp_path: Path, clock: FakeClock) -> None:
    """A commit wakes the outbox and timer loops when it adds a delivery due at once or a
    timer; a join that only waits to be coalesced leaves them to their next poll."""
    store = SqliteStore(str(tmp_path / "wake.db"))
    await store.open()
    wakes: list[int] = []
    rules = RulesHolder(SHIPPED_RULES, Metrics())
    service = IncidentService(store, rules, Metrics(), clock, on_commit=lambda: wakes.append(1))

    async def post(*alerts: dict[str, object]) -> None:
        payload = WebhookPayload.model_validate(webhook(*alerts))
        await service.ingest(payload.domain_alerts())

    try:
        await post(alert(instance="a"))  # opens: JIRA and Slack now, escalation timers
        assert len(wakes) == 1
        clock.advance(seconds=5)
        await post(alert(instance="b"))  # joins: JIRA in a minute, coalesced
        await post(alert(instance="c"))
        assert len(wakes) == 1
        jira = [d for d in await store.deliveries("pending", None, 10) if d.channel == "jira"]
        [joined] = [d for d in jira if d.kind == "incident.alerts_joined"]
        assert joined.next_attempt_at == clock.now + timedelta(minutes=1)
        clock.advance(seconds=5)
        await post(*(resolved(alert(instance=i), clock.now) for i in ("a", "b", "c")))
        assert len(wakes) == 2  # resolved: JIRA and Slack now, the waiting join with them
    finally:
        await store.close()


async def test_a_notifier_that_crashes_is_dead_lettered_after_three_tries(
    rig: Rig, clock: FakeClock
) -> None:
    """An unexpected exception is a bug, not an outage: three tries, then the row is dead
    and the incident's next delivery on that channel goes out."""
    rig.jira.fail_next(*(KeyError("fields") for _ in range(3)))
    a = alert()
    await rig.post(a)
    clock.advance(seconds=1)
    await rig.post(resolved(a, clock.now))
    for _ in range(3):
        await rig.worker.run_once()
        clock.advance(minutes=10)  # past any backoff
    while await rig.worker.run_once():
        pass
    await rig.worker.flush()
    assert rig.jira.attempts == 4
    assert kinds(rig.jira) == ["incident.resolved"]
    [dead] = await rig.store.deliveries("dead", None, 10)
    assert (dead.kind, dead.attempts) == ("incident.opened", 3)
    assert dead.last_error is not None and "KeyError" in dead.last_error
    for outcome, count in (("retried", 2), ("failed", 1)):
        labels = {"channel": "jira", "outcome": outcome, "reason": "crash"}
        assert rig.metric("receiver_notifications_total", **labels) == count


async def test_log_only_mode_logs_the_text_people_would_get(make_client: Any) -> None:
    """Without accounts, each would-be delivery is logged with the text it would show."""
    with structlog.testing.capture_logs() as logs:
        client = await make_client()  # no JIRA or Slack settings: every channel logs
        p1 = webhook(any_alert(annotations={"summary": "KIS token refresh failing"}))
        assert (await client.post("/webhook", json=p1, headers=AUTH)).status == 200
        wanted = {("pager", "page"), ("jira", "incident.opened"), ("slack", "incident.opened")}
        await wait_for(lambda: wanted <= {
            (e.get("channel"), e.get("kind")) for e in logs if e["event"] == "would_send"
        })  # fmt: skip
    sent = {(e["channel"], e["kind"]): e["text"] for e in logs if e["event"] == "would_send"}
    page = sent["pager", "page"]
    assert page.startswith("Page: New incident: [P1][api] KIS token refresh failing")
    assert "You are paged (step 0, as oncall)" in page
    assert sent["slack", "incident.opened"].startswith("New incident: [P1][api] KIS token")
    assert sent["jira", "incident.opened"].startswith("create issue: [P1][api] KIS token")
