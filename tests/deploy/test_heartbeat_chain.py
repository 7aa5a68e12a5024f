"""The heartbeat of the whole alert path, with the real Prometheus and Alertmanager: the
shipped Watchdog rule always fires, Alertmanager keeps re-sending it to the receiver, which
takes it as a sign of life of the shipped ``watchdog`` heartbeat and opens no incident.
Alertmanager stopped, the receiver's clock moved past ``every + grace`` (the shipped 5m +
2m) opens its own incident ``heartbeat:watchdog`` and pages devops' on-call by Slack DM;
Alertmanager started again, the next Watchdog resolves it.

Prometheus and Alertmanager keep real time; the in-process receiver's clock follows real
time while the Watchdog arrives and is moved forward (never back) once Alertmanager, really
stopped, can send nothing more.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.config import load_rules
from receiver.domain.oncall import responder
from tests.api.test_reports import live
from tests.api.test_slack_notify import jira as jira  # the fixtures on the test's clock
from tests.api.test_slack_notify import slack as slack
from tests.conftest import API, WEBHOOK_TOKEN, ClientFactory
from tests.deploy.harness import (
    RULES_DIR,
    derived_alertmanager_config,
    derived_prometheus_config,
    eventually,
    running_alertmanager,
    running_prometheus,
)
from tests.e2e.harness import free_port
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.helpers import SHIPPED_RULES, FakeClock

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

KEY = "heartbeat:watchdog"
TELEGRAM_IDS = 2000  # devops' members get 2000, 2001, ...: paged on Telegram first


def rules_file(tmp_path: Path) -> Path:
    """The shipped rules, devops' people paged on Telegram first, then on Slack."""
    data: dict[str, Any] = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    team = data["teams"]["devops"]["rotation"]
    for n, person in enumerate(data["rotations"][team]["members"]):
        data["people"][person].update(telegram_id=TELEGRAM_IDS + n, notify=["telegram", "slack"])
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


Client = TestClient[Any, web.Application]


def alertmanager_config(webhook_url: str, token_file: Path) -> dict[str, Any]:
    """The shipped alertmanager.yml pointed at the test receiver, its Watchdog route
    re-sending every second instead of every minute."""
    config = derived_alertmanager_config(webhook_url, token_file)
    [route] = [r for r in config["route"]["routes"] if r["matchers"] == ['alertname="Watchdog"']]
    route.update(group_wait="0s", group_interval="1s", repeat_interval="1s")
    return config


async def api_get(client: Client, path: str) -> Any:
    resp = await client.get(path, headers=API)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_watchdog_keeps_the_heartbeat_alive_and_its_silence_pages_devops(
    make_client: ClientFactory,
    slack: FakeSlack,
    jira: FakeJira,
    telegram: FakeTelegram,
    clock: FakeClock,
    tmp_path: Path,
    session: aiohttp.ClientSession,
) -> None:
    clock.now = datetime.now(UTC)
    rules = rules_file(tmp_path)
    cfg = load_rules(rules)
    client = await make_client(
        **live(slack, jira),
        rules=str(rules),
        telegram_token=telegram.token,
        telegram_api_url=telegram.url.removesuffix("/bot"),
        telegram_webhook_secret="heartbeat-test",
    )
    token_file = tmp_path / "webhook-token"
    token_file.write_text(WEBHOOK_TOKEN + "\n")
    am_config = alertmanager_config(str(client.make_url("/webhook")), token_file)
    am_port = free_port()
    am_url = f"http://127.0.0.1:{am_port}"

    async def incidents() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await api_get(client, "/api/v1/incidents"))["incidents"]
        return found

    async def watchdog() -> dict[str, Any]:
        beats = (await api_get(client, "/api/v1/heartbeats"))["heartbeats"]
        [beat] = [b for b in beats if b["name"] == "watchdog"]
        assert isinstance(beat, dict)
        return beat

    async def live_watchdog() -> dict[str, Any]:
        clock.now = max(clock.now, datetime.now(UTC))  # the receiver follows real time
        return await watchdog()

    beat = await watchdog()
    assert beat["state"] == "waiting" and beat["last_seen"] is None
    assert (beat["every_seconds"], beat["grace_seconds"]) == (300, 120)  # the shipped values

    config = derived_prometheus_config({}, am_url)
    config["rule_files"] = [str(RULES_DIR / "receiver.yml")]
    async with running_prometheus(config, tmp_path, session) as prometheus:

        def logs() -> str:
            return prometheus.proc.logs() + "\n" + _tail(tmp_path / "alertmanager.stderr.log")

        async with running_alertmanager(am_config, tmp_path, am_port):
            first = await eventually(
                live_watchdog, lambda b: b["state"] == "alive", "the first Watchdog", logs
            )
            firing = [a for a in await prometheus.alerts() if a["state"] == "firing"]
            assert [a["labels"]["alertname"] for a in firing] == ["Watchdog"]
            # Alertmanager keeps re-sending it: each arrival moves the sign of life on
            for _ in range(2):
                seen = _at(first["last_seen"])
                first = await eventually(
                    live_watchdog,
                    lambda b: _at(b["last_seen"]) > seen,  # noqa: B023 (awaited at once)
                    "Alertmanager re-sending the Watchdog",
                    logs,
                    within=20,
                )
            assert await incidents() == []  # signs of life open no incident
        # Alertmanager is stopped: nothing reaches the receiver any more
        await asyncio.sleep(0.5)  # a webhook it sent as it stopped is through
        stopped = await watchdog()
        assert stopped["state"] == "alive"
        last_seen = _at(stopped["last_seen"])

        clock.now = last_seen + timedelta(minutes=7)  # exactly every + grace: not yet
        await asyncio.sleep(0.5)  # several heartbeat polls
        assert await incidents() == []
        clock.now = last_seen + timedelta(minutes=7, seconds=1)
        [opened] = await eventually(
            incidents, lambda found: len(found) == 1, "the heartbeat incident", logs, within=20
        )
        assert (opened["key"], opened["status"]) == (KEY, "triggered")
        assert (opened["severity"], opened["category"], opened["team"]) == (
            "P1",
            "network",
            "devops",
        )
        on_call = responder(cfg, cfg.teams["devops"].rotation, clock.now).person
        chat = cfg.people[on_call].telegram_id
        assert chat is not None

        async def pages() -> list[dict[str, Any]]:
            return [m for m in telegram.sent(chat) if "You are paged" in m["text"]]

        [page] = await eventually(
            pages, bool, f"a Telegram page to devops' on-call {on_call}", logs, within=20
        )
        assert f"#{opened['id']} [P1][network] Heartbeat watchdog is silent" in page["text"]
        missed = await watchdog()
        assert missed["state"] == "missed"
        assert missed["last_seen"] == stopped["last_seen"]  # no Watchdog while it was down

        async with running_alertmanager(am_config, tmp_path, am_port):
            url = f"/api/v1/incidents/{opened['id']}"
            done = await eventually(
                lambda: api_get(client, url),
                lambda view: view["status"] == "resolved",
                "the heartbeat incident resolved by the next Watchdog",
                logs,
                within=30,
            )
        events = [e["event"] for e in done["timeline"]]
        assert events[:2] == ["opened", "paged"], events
        assert (await watchdog())["state"] == "alive"
        assert [i["key"] for i in await incidents()] == [KEY]  # the only incident
        # paged once, though every poll saw the silence; the page now says it is over
        [shown] = telegram.sent(chat)
        assert shown["message_id"] == page["message_id"]
        assert shown["text"].startswith("✅ Resolved")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
