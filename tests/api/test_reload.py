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
