"""Two receivers on one PostgreSQL behave as one, under an HA Alertmanager pair's load."""

from __future__ import annotations

import secrets
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.reliability.harness import (
    CFG,
    ReceiverProcess,
    Sent,
    all_incidents,
    check_once_each,
    drive,
    firing_webhook,
    resolved_webhook,
    service_of,
    settle,
)

INCIDENTS = 1000


async def test_two_replicas_same_webhooks_one_of_everything(
    postgres_url: str,
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    run = secrets.token_hex(3)
    replicas = [ReceiverProcess(name, postgres_url, jira, slack, tmp_path) for name in ("a", "b")]
    for replica in replicas:
        replica.start()
    logs = "\n".join(r.log_tail() for r in replicas)
    try:
        for replica in replicas:
            await replica.ready(session)
        urls = [r.url for r in replicas]
        sent = Sent()
        # Every notification reaches both replicas at the same moment.
        await drive(session, urls, [firing_webhook(n, run) for n in range(INCIDENTS)], sent)
        assert sent.counts() == {200: 2 * INCIDENTS}, sent.counts()
        await settle(session, urls[0], within=180, logs=logs)
        expected = {f"svc-{run}-{n:05d}" for n in range(INCIDENTS)}
        for url in urls:  # both replicas see the same incidents
            check_once_each(await all_incidents(session, url), expected, jira, slack)

        await drive(session, urls, [resolved_webhook(n, run) for n in range(INCIDENTS)], sent)
        await settle(session, urls[1], within=180, logs=logs)
        incidents = await all_incidents(session, urls[1])
        check_once_each(incidents, expected, jira, slack)
        assert {i["status"] for i in incidents} == {"resolved"}
        for incident in incidents:
            key = incident["jira_key"]
            resolves = [c for c in jira.comments(key) if c.startswith("Resolved")]
            assert len(resolves) == 1, (key, jira.comments(key))
            assert jira.comments(key)[-1].startswith("Resolved")
            assert jira.issues[key]["status"] == "Done"
        threads = [m for m in slack.posted_to(CFG.channels.alerts) if m["thread_ts"]]
        per_service = {service_of(i): 0 for i in incidents}
        for message in threads:
            for service in per_service:
                if service in message["text"]:
                    per_service[service] += 1
        assert set(per_service.values()) == {1}, "one resolve reply per incident"
        for replica in replicas:
            assert await replica.terminate() == 0, replica.log_tail()
    finally:
        for replica in replicas:
            replica.kill()


pytestmark = pytest.mark.timeout(420)
