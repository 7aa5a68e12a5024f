"""SIGTERM under load: stop accepting, answer what is in flight, release claims, exit 0."""

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

INCIDENTS = 200


async def test_sigterm_under_load_answers_in_flight_requests_and_loses_nothing(
    sqlite_url: str,
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    run = secrets.token_hex(3)
    bodies = [firing_webhook(n, run) for n in range(INCIDENTS)]
    receiver = ReceiverProcess("receiver", sqlite_url, jira, slack, tmp_path)
    receiver.start()
    try:
        await receiver.ready(session)
        sent = Sent()
        load = asyncio.create_task(drive(session, [receiver.url], bodies, sent, concurrency=16))
        await wait_for(lambda: len(sent.acknowledged()) >= INCIDENTS // 4, 60)
        assert await receiver.terminate() == 0, receiver.log_tail()
        await load
        # Requests were answered 200 or refused once the listener closed: never a 5xx.
        assert set(sent.counts()) <= {200, 0}, sent.counts()
        acknowledged = sent.acknowledged()

        receiver.start()
        await receiver.ready(session)
        stored = {service_of(i) for i in await all_incidents(session, receiver.url)}
        lost = {f"svc-{run}-{n:05d}" for n in acknowledged} - stored
        assert not lost, f"{len(lost)} acknowledged webhooks lost"
        retry = [bodies[n] for n in range(INCIDENTS) if n not in acknowledged]
        await drive(session, [receiver.url], retry, Sent())
        await settle(session, receiver.url, logs=receiver.log_tail())
        incidents = await all_incidents(session, receiver.url)
        check_once_each(incidents, {f"svc-{run}-{n:05d}" for n in range(INCIDENTS)}, jira, slack)
    finally:
        receiver.kill()


async def test_sigterm_releases_a_delivery_stuck_on_jira(
    sqlite_url: str,
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    """JIRA created the issue but holds its answer; the stopping receiver gives up after its
    grace period and releases the claim, so the restarted one finishes the delivery at once
    (not after the 120 s lease) and finds the issue instead of creating a second."""
    run = secrets.token_hex(3)
    receiver = ReceiverProcess("receiver", sqlite_url, jira, slack, tmp_path)
    receiver.start()
    try:
        await receiver.ready(session)
        jira.fail_next_create_after_commit(mode="hang", hang_seconds=60)
        await drive(session, [receiver.url], [firing_webhook(0, run)], Sent())
        await wait_for(lambda: bool(jira.issues), 30)
        assert await receiver.terminate() == 0, receiver.log_tail()
        receiver.start()
        await receiver.ready(session)
        # well inside the 120 s lease: only a released claim can be delivered this soon
        await settle(session, receiver.url, within=60, logs=receiver.log_tail())
        incidents = await all_incidents(session, receiver.url)
        check_once_each(incidents, {f"svc-{run}-00000"}, jira, slack)
    finally:
        receiver.kill()


pytestmark = pytest.mark.timeout(180)
