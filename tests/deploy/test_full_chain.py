"""The whole chain with the shipped files: Prometheus evaluates the shipped KIS rule on a
page of metrics the test controls, the shipped Alertmanager config (pointed at the test
receiver) delivers it, the receiver files a JIRA issue and pages on Slack, the ack shows
up in Prometheus as alert-to-ack latency. Along the way, the shipped Watchdog takes the
same path and keeps the receiver's heartbeat ``watchdog`` alive without an incident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.deploy.harness import (
    derived_alertmanager_config,
    derived_prometheus_config,
    eventually,
    running_alertmanager,
    running_prometheus,
)
from tests.fakes.jira import FakeJira
from tests.fakes.server import LoopbackServer
from tests.fakes.slack import FakeSlack
from tests.reliability.harness import (
    WEBHOOK_TOKEN,
    ReceiverProcess,
    all_incidents,
    api_get,
    api_post,
    incident_of_label,
    label_of,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RULE = "kis-token-refresh-failure"
RUNBOOK = "https://runbooks.example.com/alerts/KISTokenRefreshFailed"
WATCHDOG = {"alertname": "Watchdog", "severity": "none"}  # always firing: heartbeat watchdog


class KisGatewayPage(LoopbackServer):
    """The kis-gateway's /metrics: the test sets the refresh failure count."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = (
            "# TYPE kis_token_refresh_failures_total counter\n"
            f"kis_token_refresh_failures_total {self.failures}\n"
            "# TYPE kis_token_expiry_timestamp_seconds gauge\n"
            "kis_token_expiry_timestamp_seconds 4102444800\n"  # 2100: far from expiring
        )
        return web.Response(text=body, content_type="text/plain")


async def test_prometheus_alertmanager_receiver_jira_slack_ack(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    token_file = tmp_path / "webhook-token"
    token_file.write_text(WEBHOOK_TOKEN + "\n")
    receiver = ReceiverProcess(
        "receiver", f"sqlite:///{tmp_path}/receiver.db", jira, slack, tmp_path
    )
    receiver.start()
    try:
        async with KisGatewayPage() as page:
            await receiver.ready(session)
            am_config = derived_alertmanager_config(receiver.url + "/webhook", token_file)
            async with running_alertmanager(am_config, tmp_path) as alertmanager_url:
                jobs = {
                    "kis-gateway": [page.url.removeprefix("http://")],
                    "receiver": [receiver.url.removeprefix("http://")],
                }
                config = derived_prometheus_config(jobs, alertmanager_url, with_rules=True)
                async with running_prometheus(config, tmp_path, session) as prometheus:

                    def logs() -> str:
                        return f"{receiver.log_tail()}\n{prometheus.proc.logs()}"

                    await eventually(
                        lambda: prometheus.query("kis_token_refresh_failures_total"),
                        bool,
                        "the first scrape of kis-gateway (no failure yet)",
                        logs,
                    )

                    async def watchdog() -> list[dict[str, Any]]:
                        body = await api_get(session, receiver.url, "/api/v1/heartbeats")
                        beats: list[dict[str, Any]] = body["heartbeats"]
                        return [b for b in beats if b["name"] == "watchdog"]

                    await eventually(
                        watchdog,
                        lambda beats: [b["state"] for b in beats] == ["alive"],
                        "the Watchdog alert to reach the receiver's heartbeat",
                        logs,
                    )
                    assert await all_incidents(session, receiver.url) == []
                    page.failures = 2

                    async def firing_alerts() -> list[dict[str, Any]]:
                        return [
                            a
                            for a in await prometheus.alerts()
                            if a["state"] == "firing" and a["labels"] != WATCHDOG
                        ]

                    firing = await eventually(
                        firing_alerts, bool, "the shipped KISTokenRefreshFailed rule to fire", logs
                    )
                    assert [a["labels"] for a in firing] == [
                        {
                            "alertname": "KISTokenRefreshFailed",
                            "service": "kis-gateway",
                            "severity": "critical",
                        }
                    ]
                    assert firing[0]["annotations"]["runbook_url"] == RUNBOOK

                    async def issues() -> list[dict[str, Any]]:
                        return list(jira.issues.values())

                    [issue] = await eventually(issues, bool, "a JIRA issue", logs)
                    await eventually(
                        _dms(slack), bool, "a Slack page (direct message)", logs, within=30
                    )

                    [incident] = await all_incidents(session, receiver.url)
                    assert incident["rule"] == RULE
                    assert incident["severity"] == "P1"
                    assert incident["category"] == "api"
                    assert incident["status"] == "triggered"
                    [received] = incident["alerts"]
                    # Prometheus' external label travelled with the alert.
                    assert received["labels"]["environment"] == "beta"
                    assert incident_of_label(label_of(issue)) == incident["id"]
                    assert issue["fields"]["priority"] == "High"
                    assert RUNBOOK in issue["fields"]["description"]

                    path = f"/api/v1/incidents/{incident['id']}/ack"
                    status, body = await api_post(session, receiver.url, path, {"by": "kim"})
                    assert status == 200, body

                    latency = await eventually(
                        lambda: prometheus.query(
                            'receiver_alert_to_ack_seconds_count{severity="P1",category="api"} > 0'
                        ),
                        bool,
                        "alert-to-ack latency in Prometheus",
                        logs,
                    )
                    assert float(latency[0]["value"][1]) == 1
                    summed = await prometheus.query(
                        'receiver_alert_to_ack_seconds_sum{severity="P1",category="api"}'
                    )
                    assert 0 < float(summed[0]["value"][1]) < 120, summed
    finally:
        await receiver.terminate()


def _dms(slack: FakeSlack) -> Any:
    async def fetch() -> list[dict[str, Any]]:
        return [m for m in slack.messages if m["is_dm"]]

    return fetch
