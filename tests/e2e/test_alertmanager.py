"""End to end: a real Alertmanager delivers webhooks to a real receiver process."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from .harness import Alertmanager, Receiver, basic, bearer, poll

pytestmark = pytest.mark.e2e

KIS = "KISTokenRefreshFailed"
SLOW = "HighResponseTime"
KIS_A = {"alertname": KIS, "service": "kis-gateway", "instance": "a"}
KIS_B = {"alertname": KIS, "service": "kis-gateway", "instance": "b"}
SLOW_ORDERS = {"alertname": SLOW, "service": "order-api", "severity": "critical"}

SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def rfc3339_nano(ns: int) -> str:
    """A UTC timestamp with nanoseconds, as Prometheus writes startsAt and endsAt."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def prom_alert(
    labels: dict[str, str], starts_ns: int, ends_ns: int | None = None
) -> dict[str, Any]:
    """One alert in the shape Prometheus posts to /api/v2/alerts."""
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": f"{labels['alertname']} on {labels['service']}",
            "description": "raised by the end-to-end test",
            "runbook_url": "https://runbooks.example.com/" + labels["alertname"],
        },
        "startsAt": rfc3339_nano(starts_ns),
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
    }
    if ends_ns is not None:
        alert["endsAt"] = rfc3339_nano(ends_ns)
    return alert


def with_alertname(incidents: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The incidents holding at least one alert with this alertname."""
    return [i for i in incidents if any(a["labels"].get("alertname") == name for a in i["alerts"])]


def fingerprints(incidents: list[dict[str, Any]]) -> set[str]:
    """Every alert fingerprint across these incidents."""
    return {a["fingerprint"] for i in incidents for a in i["alerts"]}


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """Sum of the samples of one metric whose labels include these; None if there are none."""
    values = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        sample_labels = dict(LABEL.findall(match["labels"] or ""))
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            values.append(float(match["value"]))
    return sum(values) if values else None


def timeline_events(receiver: Receiver, incident_id: Any) -> list[str]:
    """The event names of one incident's timeline, oldest first as the API gives them."""
    detail = receiver.api_get(f"/api/v1/incidents/{incident_id}")
    return [entry["event"] for entry in detail["timeline"]]


def test_alertmanager_notifications_open_group_and_resolve_incidents(
    receiver: Receiver, alertmanager: Alertmanager
) -> None:
    """Grouped firing notifications make incidents; resolved notifications close them."""

    def logs() -> str:
        return f"{receiver.proc.logs()}\n{alertmanager.proc.logs()}"

    starts = time.time_ns() - 60 * 1_000_000_000
    alertmanager.post_alerts([prom_alert(KIS_A, starts), prom_alert(SLOW_ORDERS, starts)])
    poll(
        receiver.incidents,
        lambda found: bool(with_alertname(found, KIS) and with_alertname(found, SLOW)),
        "the first notifications to open incidents",
        logs,
    )

    # The second instance fails later: Alertmanager sends the group again with both alerts.
    alertmanager.post_alerts([prom_alert(KIS_B, starts + 5_000_000_000)])
    held = {a["labels"].get("instance", a["labels"]["alertname"]): a for a in alertmanager.alerts()}
    kis_fingerprints = {held["a"]["fingerprint"], held["b"]["fingerprint"]}
    incidents = poll(
        receiver.incidents,
        lambda found: fingerprints(with_alertname(found, KIS)) >= kis_fingerprints,
        "the second KIS alert to join",
        logs,
    )

    kis = with_alertname(incidents, KIS)
    assert len(kis) == 1, f"one key, one incident: {kis}"
    kis_incident = kis[0]
    assert fingerprints(kis) == kis_fingerprints
    assert kis_incident["rule"] == "kis-token-refresh-failure"
    assert "kis-gateway" in kis_incident["key"]
    assert kis_incident["status"] == "triggered"
    assert kis_incident["severity"] == "P1"
    assert kis_incident["category"] == "api"
    assert kis_incident["team"] == "backend"
    assert kis_incident["opened_at"]
    assert kis_incident["acknowledged_at"] is None
    assert kis_incident["acknowledged_by"] is None
    assert kis_incident["resolved_at"] is None
    assert {a["status"] for a in kis_incident["alerts"]} == {"firing"}

    slow = with_alertname(incidents, SLOW)
    assert len(slow) == 1, slow
    slow_incident = slow[0]
    assert slow_incident["rule"] == "high-response-time"
    assert slow_incident["severity"] == "P1"  # severity="critical" maps to P1
    assert slow_incident["category"] == "performance"
    assert slow_incident["status"] == "triggered"
    assert fingerprints(slow) == {held[SLOW]["fingerprint"]}
    assert slow_incident["id"] != kis_incident["id"]

    assert "opened" in timeline_events(receiver, kis_incident["id"])

    ends = time.time_ns()
    alertmanager.post_alerts(
        [
            prom_alert(KIS_A, starts, ends),
            prom_alert(KIS_B, starts + 5_000_000_000, ends),
            prom_alert(SLOW_ORDERS, starts, ends),
        ]
    )
    ids = {kis_incident["id"], slow_incident["id"]}
    incidents = poll(
        receiver.incidents,
        lambda found: {i["id"] for i in found if i["status"] == "resolved"} >= ids,
        "the resolved notifications to resolve both incidents",
        logs,
    )

    assert len(incidents) == 2, incidents
    for incident in incidents:
        assert incident["resolved_at"], incident
        assert {a["status"] for a in incident["alerts"]} == {"resolved"}, incident
        assert "resolved" in timeline_events(receiver, incident["id"])
    resolved = receiver.api_get("/api/v1/incidents?status=resolved")["incidents"]
    assert {i["id"] for i in resolved} == ids
    assert receiver.api_get("/api/v1/incidents?status=triggered")["incidents"] == []

    metrics = receiver.metrics()
    accepted = metric_value(metrics, "receiver_webhook_requests_total", code="200")
    assert accepted is not None and accepted >= 1, metrics
    firing = metric_value(metrics, "receiver_alerts_received_total", status="firing")
    assert firing is not None and firing >= 3, metrics
    cleared = metric_value(metrics, "receiver_alerts_received_total", status="resolved")
    assert cleared is not None and cleared >= 3, metrics
    receiver.assert_secrets_not_logged()


def webhook_payload() -> dict[str, Any]:
    """A firing notification as Alertmanager 0.25 sends it (captured, then trimmed)."""
    labels = {"alertname": KIS, "instance": "a", "service": "kis-gateway"}
    group = {"alertname": KIS, "service": "kis-gateway"}
    return {
        "receiver": "incident-receiver",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "KIS token refresh failed"},
                "startsAt": "2026-11-26T07:18:02.172777136Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
                "fingerprint": "47d8ecbc1838860d",
            }
        ],
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": {"summary": "KIS token refresh failed"},
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": '{}:{alertname="KISTokenRefreshFailed", service="kis-gateway"}',
        "truncatedAlerts": 0,
    }


def test_webhook_refuses_bad_credentials(receiver: Receiver) -> None:
    """A well-formed notification with missing or wrong credentials is refused and not stored."""
    payload = webhook_payload()
    wrong = secrets.token_urlsafe(24)
    refused = {
        "no credentials": {},
        "wrong bearer token": bearer(wrong),
        "wrong basic password": basic("alertmanager", wrong),
        "API token instead of webhook token": bearer(receiver.api_token),
    }
    for case, headers in refused.items():
        answer = receiver.post_webhook(payload, headers)
        assert answer.status == 401, f"{case}: {answer.status} {answer.body[:300]!r}"
        assert "error" in answer.json(), case
        assert receiver.webhook_token.encode() not in answer.body, case
    assert receiver.incidents() == []

    # The same payload with the right token goes through, so the refusals were about credentials.
    for headers in (bearer(receiver.webhook_token), basic("alertmanager", receiver.webhook_token)):
        answer = receiver.post_webhook(payload, headers)
        detail = f"{answer.status} {answer.body[:300]!r}\n{receiver.proc.logs()}"
        assert answer.status == 200, detail
    assert len(receiver.incidents()) == 1
    receiver.assert_secrets_not_logged()
