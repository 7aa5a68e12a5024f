"""PostgreSQL restarted under load: 503 while it is gone, never a 200 that vanishes."""

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
from tests.reliability.postgres import PrivateCluster

INCIDENTS = 400
DOWN_SECONDS = 3.0


async def test_postgres_restart_under_load(
    private_postgres: PrivateCluster,
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    run = secrets.token_hex(3)
    bodies = [firing_webhook(n, run) for n in range(INCIDENTS)]
    receiver = ReceiverProcess(
        "receiver", private_postgres.url, jira, slack, tmp_path, outbox_lease_seconds="3"
    )
    receiver.start()
    try:
        await receiver.ready(session)
        sent = Sent()
        load = asyncio.create_task(drive(session, [receiver.url], bodies, sent, concurrency=4))
        await wait_for(lambda: len(sent.acknowledged()) >= INCIDENTS // 4, 60)
        await asyncio.to_thread(private_postgres.stop)
        await asyncio.sleep(DOWN_SECONDS)  # webhooks keep coming and must be refused
        refused_while_down = sent.counts()[503]
        await asyncio.to_thread(private_postgres.start)
        await load
        counts = sent.counts()
        assert refused_while_down > 0, counts
        assert set(counts) <= {200, 503}, counts  # a clear answer, never a 500 or a hang
        assert receiver.process is not None and receiver.process.poll() is None

        # Alertmanager retries every 503; what got a 200 must all be there.
        acknowledged = sent.acknowledged()
        stored = {service_of(i) for i in await all_incidents(session, receiver.url)}
        lost = {f"svc-{run}-{n:05d}" for n in acknowledged} - stored
        assert not lost, f"{len(lost)} acknowledged webhooks lost"
        again = Sent()
        retry = [bodies[n] for n in range(INCIDENTS) if n not in acknowledged]
        await drive(session, [receiver.url], retry, again)
        assert again.counts() == {200: len(retry)}, again.counts()
        await settle(session, receiver.url, logs=receiver.log_tail())
        incidents = await all_incidents(session, receiver.url)
        check_once_each(incidents, {f"svc-{run}-{n:05d}" for n in range(INCIDENTS)}, jira, slack)
        assert await receiver.terminate() == 0
    finally:
        receiver.kill()


pytestmark = pytest.mark.timeout(240)
