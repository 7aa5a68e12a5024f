"""JIRA and Slack down under load: after they recover, everything arrives once, in order."""

from __future__ import annotations

import asyncio
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
    api_get,
    check_once_each,
    drive,
    firing_webhook,
    resolved_webhook,
    service_of,
    settle,
)

INCIDENTS = 120
RESOLVED = 60
OUTAGE_SECONDS = 4.0
COMMENT_VERBS = {"paged": "Paged", "escalated": "Escalated", "resolved": "Resolved"}


def _comment_verbs(jira: FakeJira, key: str) -> list[str]:
    return [c.split(" ", 1)[0] for c in jira.comments(key)]


async def outage_and_recovery(
    urls: list[str],
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
    logs: str,
) -> None:
    """Open and resolve incidents through ``urls`` while JIRA and Slack answer 503."""
    run = secrets.token_hex(3)
    jira.down()
    slack.down()
    sent = Sent()
    await drive(session, urls, [firing_webhook(n, run) for n in range(INCIDENTS)], sent)
    await asyncio.sleep(1.0)  # the step-0 pages fire (and fail to reach Slack) before resolves
    resolves = [resolved_webhook(n, run) for n in range(RESOLVED)]
    await drive(session, urls, resolves, sent, offset=INCIDENTS)
    assert set(sent.counts()) == {200}, sent.counts()
    pending = await api_get(session, urls[0], "/api/v1/deliveries?status=pending&limit=500")
    assert len(pending["deliveries"]) >= INCIDENTS, "deliveries should be waiting for JIRA/Slack"
    await asyncio.sleep(OUTAGE_SECONDS)
    assert not jira.issues and not slack.messages, "nothing gets through during the outage"
    jira.up()
    slack.up()

    await settle(session, urls[0], within=150, logs=logs)
    incidents = await all_incidents(session, urls[0])
    check_once_each(incidents, {f"svc-{run}-{n:05d}" for n in range(INCIDENTS)}, jira, slack)
    resolved_services = {f"svc-{run}-{n:05d}" for n in range(RESOLVED)}
    for incident in incidents:
        key = incident["jira_key"]
        done = service_of(incident) in resolved_services
        assert incident["status"] == ("resolved" if done else "triggered"), incident
        detail = await api_get(session, urls[0], f"/api/v1/incidents/{incident['id']}")
        expected = [
            COMMENT_VERBS[e["event"]] for e in detail["timeline"] if e["event"] in COMMENT_VERBS
        ]
        assert _comment_verbs(jira, key) == expected, (key, jira.comments(key))
        assert jira.issues[key]["status"] == ("Done" if done else "Open")
        # Slack: the opening post, then (resolved only) one reply in its thread.
        [opening] = [
            m
            for m in slack.posted_to(CFG.channels.alerts)
            if not m["thread_ts"] and service_of(incident) in m["text"]
        ]
        replies = [
            m["text"].split(":")[0]
            for m in slack.posted_to(CFG.channels.alerts)
            if m["thread_ts"] == opening["ts"]
        ]
        assert replies == (["Resolved"] if done else []), (service_of(incident), replies)


async def test_jira_and_slack_outage_on_sqlite(
    sqlite_url: str,
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    receiver = ReceiverProcess("receiver", sqlite_url, jira, slack, tmp_path)
    receiver.start()
    try:
        await receiver.ready(session)
        await outage_and_recovery([receiver.url], jira, slack, session, receiver.log_tail())
        assert await receiver.terminate() == 0
    finally:
        receiver.kill()


async def test_jira_and_slack_outage_on_two_postgres_replicas(
    postgres_url: str,
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
) -> None:
    replicas = [ReceiverProcess(n, postgres_url, jira, slack, tmp_path) for n in ("a", "b")]
    for replica in replicas:
        replica.start()
    try:
        for replica in replicas:
            await replica.ready(session)
        logs = "\n".join(r.log_tail() for r in replicas)
        await outage_and_recovery([r.url for r in replicas], jira, slack, session, logs)
        for replica in replicas:
            assert await replica.terminate() == 0
    finally:
        for replica in replicas:
            replica.kill()


pytestmark = pytest.mark.timeout(240)
