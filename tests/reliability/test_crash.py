"""kill -9 under load: every acknowledged webhook survives, nothing is delivered twice."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import wait_for
from tests.reliability.harness import (
    ReceiverProcess,
    Sent,
    all_incidents,
    check_once_each,
    drive,
    firing_webhook,
    service_of,
    settle,
)

INCIDENTS = 300
LEASE = "3"


async def crash_and_recover(
    database_url: str,
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    run = secrets.token_hex(3)
    bodies = [firing_webhook(n, run) for n in range(INCIDENTS)]
    receiver = ReceiverProcess(
        "receiver", database_url, jira, slack, tmp_path, outbox_lease_seconds=LEASE
    )
    receiver.start()
    try:
        await receiver.ready(session)
        sent = Sent()
        load = asyncio.create_task(drive(session, [receiver.url], bodies, sent, concurrency=8))
        await wait_for(lambda: len(sent.acknowledged()) >= INCIDENTS // 3 or load.done(), 60)
        receiver.kill()  # mid-load, mid-delivery: no shutdown code runs
        await load
        acknowledged = sent.acknowledged()
        assert INCIDENTS // 3 <= len(acknowledged) < INCIDENTS, sent.counts()

        receiver.start()
        await receiver.ready(session)
        survived = {service_of(i) for i in await all_incidents(session, receiver.url)}
        lost = {f"svc-{run}-{n:05d}" for n in acknowledged} - survived
        assert not lost, f"{len(lost)} acknowledged webhooks lost, e.g. {sorted(lost)[:3]}"

        # Alertmanager retries what was never acknowledged.
        retry = [n for n in range(INCIDENTS) if n not in acknowledged]
        again = Sent()
        await drive(session, [receiver.url], [bodies[n] for n in retry], again, concurrency=8)
        assert again.counts() == {200: len(retry)}, again.counts()

        await settle(session, receiver.url, logs=receiver.log_tail())
        incidents = await all_incidents(session, receiver.url)
        expected = {f"svc-{run}-{n:05d}" for n in range(INCIDENTS)}
        check_once_each(incidents, expected, jira, slack)
    finally:
        receiver.kill()


async def test_kill_9_under_load(
    database_url: str,
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    await crash_and_recover(database_url, tmp_path, jira, slack, session)


pytestmark = pytest.mark.timeout(240)
