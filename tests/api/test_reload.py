"""Rules reload via POST /-/reload and SIGHUP: good files swap in, bad ones are refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import API, AUTH, ClientFactory
from tests.helpers import SHIPPED_RULES, alert, metric, webhook

NEW_RULE = """
  - name: kis-token-refresh-failure-p0
    matchers: ['alertname="KISTokenRefreshFailed"']
    severity: P0
    category: api
"""


def rules_copy(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(SHIPPED_RULES.read_text())
    return path


def put_rule_first(path: Path) -> None:
    text = path.read_text()
    head, sep, tail = text.partition("\nrules:")
    path.write_text(head + sep + NEW_RULE + tail)


async def test_reload_swaps_rules_and_refuses_bad_files(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    path = rules_copy(tmp_path)
    client = await make_client(rules=str(path))
    put_rule_first(path)
    assert (await client.post("/-/reload")).status == 401
    resp = await client.post("/-/reload", headers=API)
    assert resp.status == 200
    await client.post("/webhook", json=webhook(alert()), headers=AUTH)
    found = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]
    assert found[0]["severity"] == "P0" and found[0]["rule"] == "kis-token-refresh-failure-p0"

    good = path.read_text()
    path.write_text(
        good.replace("severity: P0\n    category: api", "severity: P7\n    category: api")
    )
    resp = await client.post("/-/reload", headers=API)
    assert resp.status == 400
    problems = (await resp.json())["problems"]
    assert any("rules[0].severity" in p and "unknown severity 'P7'" in p for p in problems)
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "receiver_config_last_reload_successful") == 0
    # The old rules stay in force.
    other = alert(alertname="KISTokenRefreshFailed", service="other")
    await client.post("/webhook", json=webhook(other), headers=AUTH)
    found = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]
    assert found[0]["rule"] == "kis-token-refresh-failure-p0"

    path.write_text(good)
    assert (await client.post("/-/reload", headers=API)).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "receiver_config_last_reload_successful") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def test_sighup_reloads_and_keeps_old_rules_on_error(tmp_path: Path) -> None:
    path = rules_copy(tmp_path)
    port = _free_port()
    env = {**os.environ, "RECEIVER_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "receiver",
            "serve",
            "--rules",
            str(path),
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{tmp_path}/r.db",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _get(f"{base}/readyz")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("receiver did not become ready")
        path.write_text("rules: [")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while metric(_get(f"{base}/metrics"), "receiver_config_last_reload_successful") != 0:
            assert time.monotonic() < deadline, "bad reload was not reported"
            time.sleep(0.1)
        assert "16 rules" in json.loads(_get(f"{base}/readyz"))["rules"]
        path.write_text(SHIPPED_RULES.read_text())
        put_rule_first(path)
        proc.send_signal(signal.SIGHUP)
        while "17 rules" not in json.loads(_get(f"{base}/readyz"))["rules"]:
            assert time.monotonic() < deadline, "good reload did not happen"
            time.sleep(0.1)
        assert metric(_get(f"{base}/metrics"), "receiver_config_last_reload_successful") == 1
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "rules_reload_failed" in err
    assert proc.returncode in (0, -signal.SIGTERM)


async def test_every_series_the_rules_can_produce_starts_at_zero(
    make_client: ClientFactory,
) -> None:
    """So a dashboard's rate() and increase() count the first event after a start."""
    client = await make_client()
    text = await (await client.get("/metrics")).text()
    for severity in ("P0", "P1", "P2", "P3"):
        assert metric(text, "receiver_ack_sla_breaches_total", severity=severity) == 0
        for category in ("functional", "api", "performance", "data", "security", "ui"):
            labels = {"severity": severity, "category": category}
            assert metric(text, "receiver_incidents_opened_total", **labels) == 0
            assert metric(text, "receiver_alert_to_ack_seconds_count", **labels) == 0
    assert metric(text, "receiver_escalations_total", severity="P0", step="0") == 0
    assert metric(text, "receiver_escalations_total", severity="P1", step="3") == 0
    assert metric(text, "receiver_escalations_total", severity="P0", step="1") is None


# Two versions of a small rules file: the second drops P2, whose rule now maps to P3.
WITH_P2 = """\
defaults: {severity: P3, category: functional, group_by: [alertname, service]}
severities:
  P1: {respond_within: 4h, ack_timeout: 30m, jira_priority: High, page: always}
  P2: {respond_within: 24h, ack_timeout: 4h, jira_priority: Medium, page: always}
  P3: {respond_within: 3d, ack_timeout: 24h, jira_priority: Low, page: never}
categories:
  functional: {team: backend}
teams:
  backend: {rotation: x, lead: kim, channel: "#team-backend", jira_project: OPS}
roles: {tech_lead: kim, project_manager: kim}
people:
  kim: {name: Kim}
rotations:
  x: {timezone: Asia/Seoul, members: [kim], shift: 1w, handoff: "2026-11-23T09:00"}
escalation:
  default: [{after: 0m, notify: [oncall]}]
channels: {alerts: "#alerts", announce: "#announce", digest: "#alerts"}
jira: {project: OPS}
rules:
  - name: latency
    matchers: ['alertname="Latency"']
    severity: P2
"""
WITHOUT_P2 = WITH_P2.replace(
    "  P2: {respond_within: 24h, ack_timeout: 4h, jira_priority: Medium, page: always}\n", ""
).replace("severity: P2", "severity: P3")


async def incidents(client: Any) -> list[dict[str, Any]]:
    body = await (await client.get("/api/v1/incidents", headers=API)).json()
    return list(body["incidents"])


async def test_reload_that_drops_a_severity_in_use_is_refused(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(WITH_P2)
    client = await make_client(rules=str(path))
    latency = alert(alertname="Latency", service="order-api")
    assert (await client.post("/webhook", json=webhook(latency), headers=AUTH)).status == 200
    [incident] = await incidents(client)
    assert incident["severity"] == "P2"

    path.write_text(WITHOUT_P2)
    resp = await client.post("/-/reload", headers=API)
    assert resp.status == 400
    [problem] = (await resp.json())["problems"]
    assert "severity 'P2' is removed" in problem and f"#{incident['id']} (triggered)" in problem
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "receiver_config_last_reload_successful") == 0
    # The old rules stay: a new alert of the key joins as P2, nothing is "raised" to P3.
    again = alert(alertname="Latency", service="order-api", instance="b")
    assert (await client.post("/webhook", json=webhook(again), headers=AUTH)).status == 200
    [incident] = await incidents(client)
    assert incident["severity"] == "P2"
    listed = await client.get("/api/v1/incidents?severity=P2", headers=API)
    assert listed.status == 200 and len((await listed.json())["incidents"]) == 1

    resp = await client.post(
        f"/api/v1/incidents/{incident['id']}/resolve", json={"by": "kim"}, headers=API
    )
    assert resp.status == 200
    assert (await client.post("/-/reload", headers=API)).status == 200  # nothing holds P2 now


async def test_a_severity_the_rules_no_longer_name_is_never_raised_or_lowered(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """Started on rules without P2 while a P2 incident is open (a restart, not a reload):
    its alerts now map to P3, which is no raise."""
    path = tmp_path / "rules.yaml"
    path.write_text(WITH_P2)
    before = await make_client(rules=str(path), run_worker=False)
    latency = alert(alertname="Latency", service="order-api")
    assert (await before.post("/webhook", json=webhook(latency), headers=AUTH)).status == 200
    await before.close()

    path.write_text(WITHOUT_P2)
    after = await make_client(rules=str(path), run_worker=False)
    again = alert(alertname="Latency", service="order-api", instance="b")
    assert (await after.post("/webhook", json=webhook(again), headers=AUTH)).status == 200
    [incident] = await incidents(after)
    detail = await (await after.get(f"/api/v1/incidents/{incident['id']}", headers=API)).json()
    assert detail["severity"] == "P2"
    assert "severity_raised" not in [e["event"] for e in detail["timeline"]]
    assert [d["kind"] for d in detail["deliveries"] if "raised" in d["kind"]] == []
