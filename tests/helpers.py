"""Builders for webhook payloads and a clock tests can move."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_RULES = ROOT / "routing_rules.yaml"
GO_ZERO = "0001-01-01T00:00:00Z"
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def rfc3339(value: datetime) -> str:
    """Alertmanager's format, nanoseconds included, in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set, like Alertmanager's."""
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alert(
    status: str = "firing",
    starts: datetime = T0,
    ends: datetime | None = None,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One alert of a webhook payload."""
    labels = {"alertname": "KISTokenRefreshFailed", "service": "kis-gateway", **labels}
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations or {"summary": f"{labels.get('alertname')} firing"},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends) if ends else GO_ZERO,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        "fingerprint": fingerprint(labels),
    }


def webhook(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """A version 4 webhook body."""
    firing = any(a["status"] == "firing" for a in alerts)
    common = dict(alerts[0]["labels"]) if alerts else {}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
        "status": status or ("firing" if firing else "resolved"),
        "receiver": "receiver",
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


def resolved(firing_alert: dict[str, Any], ends: datetime) -> dict[str, Any]:
    """The resolved notification of a firing alert."""
    return {**firing_alert, "status": "resolved", "endsAt": rfc3339(ends)}


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = field(default=T0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


# Timeline entries the escalation timers add, whenever they happen to fire.
PAGING_EVENTS = frozenset({"paged", "escalated", "ack_sla_breached"})


def lifecycle(timeline: list[dict[str, Any]]) -> list[str]:
    """The timeline's event names without the paging ones."""
    return [e["event"] for e in timeline if e["event"] not in PAGING_EVENTS]


async def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll a condition on the test's loop until it holds (bounded)."""
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")
