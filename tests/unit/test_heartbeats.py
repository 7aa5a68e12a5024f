"""Which alerts are signs of life of which heartbeat, and what a silence becomes: pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receiver.config import load_rules
from receiver.config.models import HeartbeatConfig
from receiver.domain import heartbeats
from receiver.domain.model import AlertStatus
from tests.helpers import SHIPPED_RULES

BASE = load_rules(SHIPPED_RULES)
BEATS = {
    "watchdog": HeartbeatConfig.model_validate(
        {
            "matchers": ['alertname="Watchdog"'],
            "every": "5m",
            "severity": "P1",
            "category": "network",
        }
    ),
    "backup": HeartbeatConfig.model_validate(
        {
            "matchers": ['job=~"backup-.*"', 'status!="failed"'],
            "every": "1h",
            "grace": "10m",
            "severity": "P2",
            "category": "data",
        }
    ),
    "kis-token": HeartbeatConfig.model_validate(
        {"every": "1h", "severity": "P1", "category": "api"}  # pinged through the API only
    ),
}
CFG = BASE.model_copy(update={"heartbeats": BEATS})
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def test_signs_of_life() -> None:
    signs = heartbeats.signs(CFG)
    assert heartbeats.signs(CFG) is signs  # made once per rules file
    cases = [
        ({"alertname": "Watchdog"}, "watchdog"),
        ({"alertname": "Watchdog", "severity": "none", "prometheus": "a"}, "watchdog"),
        ({"alertname": "WatchdogX"}, None),
        ({"alertname": "BackupDone", "job": "backup-db"}, "backup"),
        ({"alertname": "BackupDone", "job": "backup-db", "status": "failed"}, None),
        ({"alertname": "HighCPUUsage", "job": "node"}, None),
        ({}, None),
        # the receiver's own alert of a silence is never a sign of life, whatever matches it
        ({"alertname": "HeartbeatMissing", "heartbeat": "backup", "job": "backup-x"}, None),
    ]
    for labels, expected in cases:
        assert signs.of(labels) == expected, labels
        assert heartbeats.matching(CFG, labels) == expected


def test_the_silence_is_one_alert_firing_from_when_it_was_missed() -> None:
    beat = BEATS["backup"]
    assert heartbeats.state("backup", beat, T0, T0 + timedelta(minutes=70)).missed is False
    assert heartbeat_missed(beat, T0 + timedelta(minutes=70, seconds=1))
    alert = heartbeats.missing_alert("backup", beat, T0, AlertStatus.FIRING, T0)
    assert alert.fingerprint == "heartbeat-backup"
    assert alert.labels == {"alertname": "HeartbeatMissing", "heartbeat": "backup"}
    assert alert.starts_at == T0 + timedelta(minutes=70) and alert.ends_at is None
    assert heartbeats.of_labels(CFG, alert.labels) == "backup"
    assert heartbeats.of_labels(CFG, {**alert.labels, "heartbeat": "gone"}) is None
    route = heartbeats.route(CFG, "backup")
    assert (route.rule, route.key, route.severity, route.category, route.team) == (
        "heartbeat:backup", "heartbeat:backup", "P2", "data", "data"
    )  # fmt: skip
    assert heartbeats.is_silence(route.rule) and not heartbeats.is_silence("heartbeats")


def heartbeat_missed(beat: HeartbeatConfig, now: datetime) -> bool:
    return heartbeats.state("backup", beat, T0, now).missed
