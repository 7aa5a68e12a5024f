"""The "Alert response" dashboard: its structure, and every panel query answered with data
by a real Prometheus scraping a real receiver that has opened, paged, escalated, breached
(the ack and a later phase), acknowledged, mitigated, resolved and reported incidents,
delivered to JIRA and Slack, some deliveries failing, and seen its watchdog heartbeat go
silent twice.

The live test writes each panel's title, query and values to dashboard-queries.json in
its tmp_path and prints them (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from receiver.config import load_rules
from tests.deploy.harness import (
    DASHBOARD,
    REPO_ROOT,
    PanelQuery,
    Prometheus,
    derived_prometheus_config,
    eventually,
    load_yaml,
    panel_queries,
    panels,
    receiver_metric_names,
    receiver_metrics_used,
    running_prometheus,
    substitute,
)
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, alert, webhook
from tests.reliability.harness import ReceiverProcess, api_get, api_post, post_webhook

DATASOURCES = REPO_ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
# Grafana's built-in variables, as concrete ranges (generous: a busy machine is slow).
BUILTINS = {"__rate_interval": "2m", "__interval": "1m", "__range": "5m"}
# Gauges of the present state: zero is a fine answer for them once the outbox drained.
MAY_BE_ZERO = {"receiver_outbox_pending", "receiver_outbox_oldest_seconds"}
ACK_TIMEOUT_P2 = "2s"
MITIGATE_P2 = "2s"
# The watchdog heartbeat is missed 10s after its last sign of life (the least every allows).
HEARTBEAT_EVERY = "10s"
HEARTBEAT_GRACE = "0s"
# Series the live test makes happen, per panel: each of its queries must answer a finite,
# non-zero value for a series carrying these labels. Pages go to Slack (the pager runs on
# the fake Slack); one JIRA create is answered 503, and one Slack post is refused for good
# (that of whichever Slack-backed channel posts first: slack, pager or announce). Every
# round's P0 incident goes through all four phases; its P2 one misses its ack and, once
# acknowledged, its mitigation deadline. The watchdog heartbeat, pinged through the API,
# goes silent twice.
EXPECTED_SERIES: dict[str, list[dict[str, str]]] = {
    "Phase duration p50/p90 by phase": [
        {"phase": "ack"},
        {"phase": "mitigate"},
        {"phase": "resolve"},
        {"phase": "report"},
    ],
    "Phase SLA breaches by phase ($window)": [
        {"phase": "ack", "severity": "P2"},
        {"phase": "mitigate", "severity": "P2"},
    ],
    "Page latency": [
        {"channel": "slack", "severity": "P0"},
        {"channel": "slack", "severity": "P1"},
    ],
    "Delivery duration": [{"channel": "jira"}, {"channel": "slack"}, {"channel": "pager"}],
    "Delivery failures by channel": [
        {"channel": "jira", "outcome": "retried", "reason": "server_error"},
        {"outcome": "failed", "reason": "client_error"},
    ],
    "Heartbeat age": [{"name": "watchdog"}],
    "Heartbeats missed ($window)": [{"name": "watchdog"}],
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


# --- structure ---------------------------------------------------------------------------


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"] == "alert-response"
    assert board["title"] == "Alert response"
    assert 36 <= board["schemaVersion"] <= 41
    ids = [p["id"] for p in board["panels"]]
    ids += [p["id"] for row in board["panels"] if row["type"] == "row" for p in row["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    # No two panels overlap on Grafana's 24-column grid.
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    for panel in panels(board):
        assert panel["targets"], f"{panel['title']} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_layout() -> None:
    """Each line of panels fills the 24 columns, and the delivery panels sit in their row."""
    board = dashboard()
    lines: dict[int, list[dict[str, Any]]] = {}
    row_of: dict[str, str] = {}
    row = ""
    for panel in sorted(board["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if panel["type"] == "row":
            row = panel["title"]
        else:
            row_of[panel["title"]] = row
        lines.setdefault(panel["gridPos"]["y"], []).append(panel)
    for y, line in lines.items():
        line.sort(key=lambda p: p["gridPos"]["x"])
        x = 0
        for panel in line:
            assert panel["gridPos"]["x"] == x, f"gap before {panel['title']} at y={y}"
            x += panel["gridPos"]["w"]
        assert x == 24, f"the panels at y={y} span {x} of 24 columns"
    for title in ("Page latency", "Delivery duration", "Delivery failures by channel"):
        assert row_of.get(title) == "Delivery", f"{title} is not in the Delivery row"


def metric_labels() -> dict[str, set[str]]:
    """Every series name the receiver exports -> its label names (``le`` excluded)."""
    from receiver.metrics import Metrics

    metrics = Metrics()
    metrics.prime(["P0"], ["api"], {"P0": 1})  # create the labelled series
    metrics.set_open({}, ["P0"])
    labels: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(set(sample.labels) - {"le"})
    return labels


def test_dashboard_queries_honour_the_severity_variable() -> None:
    """A query reading a metric labelled by severity filters it by ``$severity``."""
    labels = metric_labels()
    for query in panel_queries(dashboard()):
        for name, selector in re.findall(r"\b(receiver_[a-z_]+)(\{[^}]*\})?", query.expr):
            if "severity" in labels.get(name, set()):
                assert 'severity=~"$severity"' in selector, f"{query.panel}: {name}{selector}"


def test_dashboard_uses_the_provisioned_datasource() -> None:
    [provisioned] = load_yaml(DATASOURCES)["datasources"]
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == provisioned["type"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == provisioned["uid"]


def test_dashboard_queries_read_receiver_metrics() -> None:
    """Every query reads a metric the receiver exports, and every variable it uses exists."""
    board = dashboard()
    exported = receiver_metric_names()
    for query in panel_queries(board):
        used = receiver_metrics_used(query.expr)
        assert used, f"{query.panel}: reads no receiver metric"
        assert used <= exported, f"{query.panel}: unknown {sorted(used - exported)}"
        substitute(query.expr, board, BUILTINS)  # raises on an unknown variable


# --- live --------------------------------------------------------------------------------


def short_rules(tmp_path: Path) -> Path:
    """The shipped rules with a P2 ack timeout and mitigation target of seconds, so both
    breach in the test (the ack phase's target is the ack timeout), and a watchdog
    heartbeat missed seconds after its last sign of life."""
    data = yaml.safe_load(SHIPPED_RULES.read_text())
    p2 = data["severities"]["P2"]
    p2["ack_timeout"] = ACK_TIMEOUT_P2
    p2["phases"]["mitigate"] = MITIGATE_P2
    data["heartbeats"]["watchdog"].update(every=HEARTBEAT_EVERY, grace=HEARTBEAT_GRACE)
    path = tmp_path / "routing_rules.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_rules(path)  # still valid
    return path


def round_alerts(n: int) -> list[dict[str, Any]]:
    """Round n's alerts: one P0, two P1 (api, data) and one P2 incident, each new."""
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        # P0: the core trading path is down (the service must be one of the core four).
        alert(
            starts=now - timedelta(seconds=45),
            alertname="ServiceDown",
            service=("order-api", "trading-engine")[n - 1],
            severity="critical",
        ),
        alert(
            starts=now - timedelta(seconds=150),
            alertname="KISTokenRefreshFailed",
            service=f"kis-gateway-{n}",
            severity="critical",
        ),
        alert(
            starts=now - timedelta(seconds=100),
            alertname="MarketDataStale",
            service="market-data",
            feed=f"krx-equities-{n}",
            severity="critical",
        ),
        alert(
            starts=now - timedelta(seconds=400),
            alertname="HighResponseTime",
            service=f"order-api-{n}",
            severity="warning",
        ),
    ]


async def incident_round(
    n: int, receiver: ReceiverProcess, session: aiohttp.ClientSession, logs: Callable[[], str]
) -> int:
    """Open round n's incidents, wait for their first pages, acknowledge the P0 and P1
    ones, take the P0 one through mitigate, resolve and report, let the P2 one breach its
    ack timeout, acknowledge it and let it breach its mitigation target; the number opened."""
    alerts = round_alerts(n)
    for firing in alerts:
        status = await post_webhook(session, receiver.url, webhook(firing))
        assert status == 200, f"webhook answered {status}\n{logs()}"
    keys = {a["fingerprint"] for a in alerts}

    async def ours() -> list[dict[str, Any]]:
        listed = (await api_get(session, receiver.url, "/api/v1/incidents?limit=100"))["incidents"]
        return [i for i in listed if {a["fingerprint"] for a in i["alerts"]} & keys]

    incidents = await eventually(ours, lambda found: len(found) == len(alerts), "incidents", logs)
    assert sorted(i["severity"] for i in incidents) == ["P0", "P1", "P1", "P2"], incidents

    async def wait_event(incident: dict[str, Any], event: str, **data: str) -> None:
        """Wait for a timeline entry named ``event`` carrying ``data``."""

        async def events() -> list[dict[str, Any]]:
            detail = await api_get(session, receiver.url, f"/api/v1/incidents/{incident['id']}")
            timeline: list[dict[str, Any]] = detail["timeline"]
            return timeline

        def seen(timeline: list[dict[str, Any]]) -> bool:
            return any(e["event"] == event and data.items() <= e.items() for e in timeline)

        await eventually(events, seen, f"{event} {data} on {incident['key']}", logs)

    async def act(incident: dict[str, Any], action: str) -> None:
        path = f"/api/v1/incidents/{incident['id']}/{action}"
        status, body = await api_post(session, receiver.url, path, {"by": "kim"})
        assert status == 200, f"{action} answered {status}: {body}"
        assert body["changed"], f"{action} changed nothing: {body}"

    async def ack(incident: dict[str, Any]) -> None:
        await act(incident, "ack")

    for incident in incidents:
        if incident["severity"] == "P2":
            continue
        # Step 0 pages at once (P0 and P1 page always); an earlier ack would cancel it.
        await wait_event(incident, "paged")
        await ack(incident)
    # The P0 one finishes every phase (and is no longer open; the others stay open).
    [p0] = [i for i in incidents if i["severity"] == "P0"]
    for action in ("mitigate", "resolve", "report"):
        await act(p0, action)
    [p2] = [i for i in incidents if i["severity"] == "P2"]
    await wait_event(p2, "ack_sla_breached")
    await ack(p2)
    # Its mitigation's clock runs from the ack: seconds later, that deadline passes too.
    await wait_event(p2, "phase_overdue", phase="mitigate")
    return len(incidents)


async def wait_total(
    prometheus: Prometheus, metric: str, count: int, logs: Callable[[], str]
) -> None:
    """Wait until Prometheus has scraped a sum of at least count for a metric."""

    async def total() -> float:
        result = await prometheus.query(f"sum({metric})")
        return float(result[0]["value"][1]) if result else 0.0

    await eventually(total, lambda seen: seen >= count, f"{metric} >= {count}", logs)


async def ping_watchdog(
    receiver: ReceiverProcess, session: aiohttp.ClientSession, logs: Callable[[], str]
) -> None:
    """A sign of life of the watchdog heartbeat through the API."""
    status, body = await api_post(session, receiver.url, "/api/v1/heartbeats/watchdog", {})
    assert status == 200, f"the heartbeat ping answered {status}: {body}\n{logs()}"


async def run_panels(prometheus: Prometheus) -> list[tuple[PanelQuery, str, list[Any]]]:
    board = dashboard()
    answers = []
    for query in panel_queries(board):
        expr = substitute(query.expr, board, BUILTINS)
        answers.append((query, expr, await prometheus.query(expr)))
    return answers


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(sample["value"][1]) for sample in result]


def counted(result: list[dict[str, Any]], labels: dict[str, str]) -> list[float]:
    """The finite, non-zero values of the series carrying ``labels``."""
    return [
        value
        for sample in result
        if labels.items() <= sample["metric"].items()
        for value in values([sample])
        if math.isfinite(value) and value > 0
    ]


def report(answers: list[tuple[PanelQuery, str, list[Any]]], path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {
            "panel": query.panel,
            "ref": query.ref_id,
            "query": expr,
            "result": [{"labels": s["metric"], "value": s["value"][1]} for s in result],
        }
        for query, expr, result in answers
    ]
    path.write_text(json.dumps(rows, indent=2))
    print(f"\npanel queries and answers: {path}")
    for row in rows:
        shown = ", ".join(
            "{" + ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())) + "} " + r["value"]
            for r in row["result"]
        )
        print(f"- {row['panel']} [{row['ref']}]\n    {row['query']}\n    => {shown or 'EMPTY'}")


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_every_panel_query_returns_data(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    receiver = ReceiverProcess(
        "receiver",
        f"sqlite:///{tmp_path}/receiver.db",
        jira,
        slack,
        tmp_path,
        rules=str(short_rules(tmp_path)),
        coalesce_seconds="1",
    )
    receiver.start()
    try:
        await receiver.ready(session)
        config = derived_prometheus_config({"receiver": [f"127.0.0.1:{receiver.port}"]})
        async with running_prometheus(config, tmp_path, session) as prometheus:

            def logs() -> str:
                return f"{receiver.log_tail()}\n{prometheus.proc.logs()}"

            await eventually(lambda: prometheus.scraped("receiver"), bool, "a scrape", logs)
            # One JIRA create answered 503 (retried) and one Slack post refused for good
            # (dead-lettered), so the delivery failure panel has both outcomes.
            jira.fail_next(503, path_contains="/issue", method="POST")
            slack.fail_next(200, error="account_inactive", method="chat.postMessage")
            # The watchdog's first sign of life: from now on the receiver watches it, and
            # it goes silent (its incident opens) while the rounds run.
            await ping_watchdog(receiver, session, logs)

            # Labelled series appear at their first event, which rate() cannot see; the
            # second round makes every one of them move while Prometheus watches.
            opened = 0
            for n in (1, 2):
                opened += await incident_round(n, receiver, session, logs)
                want = {
                    "receiver_incidents_opened_total": opened,
                    "receiver_alert_to_ack_seconds_count": opened,
                    "receiver_ack_sla_breaches_total": n,
                    'receiver_phase_duration_seconds_count{phase="ack"}': opened,
                    'receiver_phase_duration_seconds_count{phase="report"}': n,
                    'receiver_phase_sla_breaches_total{phase="ack"}': n,
                    'receiver_phase_sla_breaches_total{phase="mitigate"}': n,
                }
                for metric, count in want.items():
                    await wait_total(prometheus, metric, count, logs)
            # Every round pages a P0 and two P1 incidents; the one refused Slack post may
            # have been a page's, so at least one P0 and three P1 pages reached Slack.
            pages = {"P0": 1, "P1": 3}
            for severity, count in pages.items():
                page_count = f'receiver_page_latency_seconds_count{{severity="{severity}"}}'
                await wait_total(prometheus, page_count, count, logs)
            for channel in ("jira", "slack", "pager"):
                calls = f'receiver_delivery_duration_seconds_count{{channel="{channel}"}}'
                await wait_total(prometheus, calls, 1, logs)
            # The missed counter's series appears at the first silence, which increase()
            # cannot see: a sign of life (resolving its incident) and a second silence make
            # it move while Prometheus watches.
            await wait_total(prometheus, "receiver_heartbeats_missed_total", 1, logs)
            await ping_watchdog(receiver, session, logs)
            await wait_total(prometheus, "receiver_heartbeats_missed_total", 2, logs)

            answers = await run_panels(prometheus)
            report(answers, tmp_path / "dashboard-queries.json")
            for query, expr, result in answers:
                where = f"{query.panel} [{query.ref_id}]: {expr}"
                assert result, f"{where}: no data"
                finite = [v for v in values(result) if math.isfinite(v)]
                assert finite, f"{where}: only NaN {result}"
                if not receiver_metrics_used(expr) <= MAY_BE_ZERO:
                    assert max(finite) > 0, f"{where}: nothing counted {result}"
                for labels in EXPECTED_SERIES.get(query.panel, []):
                    assert counted(result, labels), f"{where}: nothing for {labels} {result}"
            answered = {query.panel for query, _, _ in answers}
            assert set(EXPECTED_SERIES) <= answered, sorted(set(EXPECTED_SERIES) - answered)
    finally:
        await receiver.terminate()
