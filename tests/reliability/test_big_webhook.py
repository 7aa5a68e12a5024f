"""One huge webhook does not hold a real receiver: health checks and small webhooks go on."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import alert, webhook
from tests.reliability.harness import WEBHOOK_TOKEN, ReceiverProcess

BIG_ALERTS = 20_000
STARTS = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def big_body() -> bytes:
    """BIG_ALERTS alerts, each on its own incident key (its own service)."""
    alerts = [
        alert(starts=STARTS, alertname="BigStorm", service=f"storm-{n:05d}")
        for n in range(BIG_ALERTS)
    ]
    return json.dumps(webhook(*alerts)).encode()


async def test_health_and_small_webhook_answer_while_a_huge_one_is_worked_through(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack
) -> None:
    database = tmp_path / "receiver.db"
    body = big_body()
    receiver = ReceiverProcess(
        "big",
        f"sqlite:///{database}",
        jira,
        slack,
        tmp_path,
        max_body_bytes=str(len(body) + 1),
    )
    receiver.start()
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    answered: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await receiver.ready(session)

            async def big() -> int:
                async with session.post(receiver.url + "/webhook", data=body, headers=headers) as r:
                    await r.read()
                    answered["big"] = time.monotonic()
                    return r.status

            async def small() -> int:
                small_alert = alert(starts=STARTS, alertname="SmallOne", service="small")
                async with session.post(
                    receiver.url + "/webhook", json=webhook(small_alert), headers=headers
                ) as r:
                    await r.read()
                    answered["small"] = time.monotonic()
                    return r.status

            async def health() -> list[float]:
                times = []
                while "big" not in answered:
                    async with session.get(receiver.url + "/healthz") as r:
                        assert r.status == 200
                    times.append(time.monotonic())
                    await asyncio.sleep(0.05)
                return times

            sending = asyncio.create_task(big())
            await asyncio.sleep(0.3)  # the big body is on its way before the others start
            small_status, health_times = await asyncio.gather(small(), health())
            assert await sending == 200, receiver.log_tail()
            assert small_status == 200, receiver.log_tail()
    finally:
        receiver.kill()
    assert health_times and health_times[0] < answered["big"], (health_times, answered)
    assert answered["small"] < answered["big"], answered
    with sqlite3.connect(database) as db:
        [(stored,)] = db.execute(
            "SELECT count(DISTINCT fingerprint) FROM alerts WHERE labels LIKE '%BigStorm%'"
        ).fetchall()
        [(keys,)] = db.execute(
            "SELECT count(DISTINCT key) FROM incidents WHERE rule = 'default' AND key LIKE ?",
            ("%BigStorm%",),
        ).fetchall()
    assert (stored, keys) == (BIG_ALERTS, BIG_ALERTS)
