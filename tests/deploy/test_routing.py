"""Every shipped alert reaches the routing rule meant for it, and Alertmanager groups it
the way the receiver keys its incident.

The label sets are the ones promtool computes in prometheus/tests (``exp_labels``: the
rule's labels plus those its expression keeps, checked by test_prometheus.py), plus the
external labels of prometheus.yml; ServiceDown also gets one label set per scrape job.

Watchdog is no incident but a heartbeat's sign of life (routing_rules.yaml ``heartbeats``):
it is checked to feed its heartbeat, and Alertmanager to re-send it within the heartbeat's
``every``, instead of reaching a routing rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import pytest

from receiver.config import RulesConfig, load_rules
from receiver.config.durations import format_duration, parse_duration
from receiver.domain.heartbeats import matching
from receiver.domain.routing import DEFAULT_RULE, Router, route
from tests.deploy.harness import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    alerting_rules,
    amtool_binary,
    load_yaml,
    rule_test_files,
    run_tool,
    tool_output,
)
from tests.helpers import SHIPPED_RULES

pytestmark = pytest.mark.timeout(60)

# What each alert must become: the first entry whose labels the alert carries wins.
# (labels the alert carries, routing rule in routing_rules.yaml, receiver severity)
EXPECTED: list[tuple[dict[str, str], str, str]] = [
    ({"alertname": "ServiceDown", "service": "order-api"}, "trading-service-down", "P0"),
    ({"alertname": "ServiceDown", "service": "trading-engine"}, "trading-service-down", "P0"),
    ({"alertname": "ServiceDown", "service": "kis-gateway"}, "trading-service-down", "P0"),
    ({"alertname": "ServiceDown", "service": "account-api"}, "trading-service-down", "P0"),
    ({"alertname": "ServiceDown"}, "service-down", "P1"),
    ({"alertname": "HighResponseTime", "severity": "critical"}, "high-response-time", "P1"),
    ({"alertname": "HighResponseTime", "severity": "warning"}, "high-response-time", "P2"),
    ({"alertname": "HighErrorRate", "severity": "critical"}, "high-error-rate", "P1"),
    ({"alertname": "HighErrorRate", "severity": "warning"}, "high-error-rate", "P2"),
    ({"alertname": "FrontendErrorRate"}, "frontend-errors", "P2"),
    ({"alertname": "KISTokenRefreshFailed"}, "kis-token-refresh-failure", "P1"),
    ({"alertname": "KISTokenExpiringSoon"}, "kis-token-expiring", "P2"),
    ({"alertname": "KISApiErrors", "severity": "critical"}, "kis-api-errors", "P1"),
    ({"alertname": "KISApiErrors", "severity": "warning"}, "kis-api-errors", "P2"),
    ({"alertname": "MarketDataStale"}, "stale-market-data", "P1"),
    ({"alertname": "DataProviderDown"}, "data-provider-down", "P1"),
    ({"alertname": "UnauthorizedAccessSpike"}, "unauthorized-access-spike", "P1"),
    ({"alertname": "HighCPUUsage", "severity": "critical"}, "resource-saturation", "P1"),
    ({"alertname": "HighCPUUsage", "severity": "warning"}, "resource-saturation", "P2"),
    ({"alertname": "HighMemoryUsage", "severity": "critical"}, "resource-saturation", "P1"),
    ({"alertname": "HighMemoryUsage", "severity": "warning"}, "resource-saturation", "P2"),
    ({"alertname": "DiskSpaceLow", "severity": "critical"}, "resource-saturation", "P1"),
    ({"alertname": "DiskSpaceLow", "severity": "warning"}, "resource-saturation", "P2"),
    ({"alertname": "DatabaseSlowQueries"}, "database-slow-queries", "P2"),
    ({"alertname": "ReceiverDown"}, "receiver-health", "P2"),
    ({"alertname": "ReceiverOutboxBacklog"}, "receiver-backlog", "P1"),
    ({"alertname": "ReceiverOutboxStale"}, "receiver-backlog", "P1"),
    ({"alertname": "ReceiverDeliveryFailures"}, "receiver-backlog", "P1"),
    ({"alertname": "ReceiverDeadLetters"}, "receiver-backlog", "P1"),
    ({"alertname": "ReceiverAckSLABreaches"}, "receiver-health", "P2"),
    ({"alertname": "ReceiverConfigReloadFailed"}, "receiver-health", "P2"),
]
# Routing rules no shipped Prometheus alert feeds (there is no network probe yet).
NOT_ALERTED = {"network-latency"}
# Alerts that are signs of life of a heartbeat rather than incidents: alertname -> heartbeat.
HEARTBEATS: dict[str, str] = {"Watchdog": "watchdog"}


def expected(labels: Mapping[str, str]) -> tuple[str, str]:
    """The routing rule and severity the table gives these labels."""
    for carried, rule, severity in EXPECTED:
        if all(labels.get(k) == v for k, v in carried.items()):
            return rule, severity
    raise AssertionError(f"no expectation for {dict(labels)}: add the alert to EXPECTED")


def _id(labels: Mapping[str, str]) -> str:
    extra = [labels[k] for k in ("severity", "service", "feed", "provider") if k in labels]
    return "-".join([labels["alertname"], *extra])


@cache
def rules_config() -> RulesConfig:
    return load_rules(SHIPPED_RULES)


def external_labels() -> dict[str, str]:
    labels: dict[str, str] = load_yaml(PROMETHEUS_CONFIG)["global"].get("external_labels", {})
    return labels


def unit_test_label_sets() -> list[dict[str, str]]:
    """Every alert label set the promtool unit tests expect, as Alertmanager receives it."""
    found: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for path in rule_test_files():
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    labels = {
                        **external_labels(),
                        **{k: str(v) for k, v in alert["exp_labels"].items()},
                        "alertname": case["alertname"],
                    }
                    found[tuple(sorted(labels.items()))] = labels
    return list(found.values())


def service_down_label_sets() -> list[dict[str, str]]:
    """ServiceDown as every scrape job its expression watches would raise it."""
    [rule] = [r for r in alerting_rules() if r["alert"] == "ServiceDown"]
    match = re.search(r'up\{job=~"([^"]+)"\}', rule["expr"])
    assert match, rule["expr"]
    watched = set(match.group(1).split("|"))
    label_sets = []
    for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]:
        for static in job["static_configs"]:
            if job["job_name"] not in watched:
                continue
            for target in static["targets"]:
                label_sets.append(
                    {
                        **external_labels(),
                        **static.get("labels", {}),
                        **rule["labels"],
                        "alertname": "ServiceDown",
                        "job": job["job_name"],
                        "instance": target,
                    }
                )
    jobs = {labels["job"] for labels in label_sets}
    assert jobs == watched, f"ServiceDown watches jobs that are not scraped: {watched - jobs}"
    return label_sets


ALL_LABEL_SETS = unit_test_label_sets() + service_down_label_sets()
# The alerts meant to open incidents, and those meant to feed a heartbeat.
LABEL_SETS = [labels for labels in ALL_LABEL_SETS if labels["alertname"] not in HEARTBEATS]
HEARTBEAT_LABEL_SETS = [labels for labels in ALL_LABEL_SETS if labels["alertname"] in HEARTBEATS]


def test_every_alert_is_in_the_table() -> None:
    """A new alert (or severity) cannot ship without an expectation here: a routing rule
    in EXPECTED, or a heartbeat in HEARTBEATS (never both)."""
    for rule in alerting_rules():
        labels = {"alertname": rule["alert"], **rule["labels"]}
        if rule["alert"] in HEARTBEATS:
            with pytest.raises(AssertionError, match="no expectation"):
                expected(labels)
        else:
            expected(labels)
    shipped = {rule["alert"] for rule in alerting_rules()}
    assert set(HEARTBEATS) <= shipped, "HEARTBEATS names alerts that do not exist"
    assert {labels["alertname"] for labels in LABEL_SETS} == shipped - set(HEARTBEATS)
    assert {labels["alertname"] for labels in HEARTBEAT_LABEL_SETS} == set(HEARTBEATS)


@pytest.mark.parametrize("labels", LABEL_SETS, ids=_id)
def test_alert_routes_to_its_rule(labels: dict[str, str]) -> None:
    """The receiver's router puts the alert under the intended rule and severity, and the
    incident key has a value for every label it groups by; no heartbeat swallows it."""
    cfg = rules_config()
    assert matching(cfg, labels) is None, f"{labels} feeds a heartbeat: it opens no incident"
    rule, severity = expected(labels)
    routed = Router(cfg).route(labels)
    assert route(cfg, labels) == routed
    assert routed.rule != DEFAULT_RULE, f"{labels} matches no rule"
    assert (routed.rule, routed.severity) == (rule, severity), labels
    empty = [name for name, value in routed.group_labels.items() if not value]
    assert not empty, f"{routed.key}: the alert lacks {empty}"


def test_every_routing_rule_gets_an_alert() -> None:
    cfg = rules_config()
    reached = {route(cfg, labels).rule for labels in LABEL_SETS}
    assert {r.name for r in cfg.rules} - reached == NOT_ALERTED


@pytest.mark.parametrize("labels", HEARTBEAT_LABEL_SETS, ids=_id)
def test_heartbeat_alert_feeds_its_heartbeat(labels: dict[str, str]) -> None:
    """A sign of life: the receiver counts it for its heartbeat and opens no incident, and
    no routing rule claims it either (it would never apply)."""
    cfg = rules_config()
    assert matching(cfg, labels) == HEARTBEATS[labels["alertname"]], labels
    assert route(cfg, labels).rule == DEFAULT_RULE, f"a routing rule matches {labels}"


def test_every_heartbeat_with_matchers_gets_an_alert() -> None:
    """Each heartbeat fed by alerts has a shipped alert feeding it: otherwise it is never
    armed and its silence pages nobody."""
    cfg = rules_config()
    fed = {matching(cfg, labels) for labels in HEARTBEAT_LABEL_SETS}
    assert fed == {name for name, beat in cfg.heartbeats.items() if beat.matchers}


# Alertmanager's own defaults for what the root route leaves out.
ALERTMANAGER_DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}


def _alertmanager_route(labels: Mapping[str, str], config: Mapping[str, Any]) -> dict[str, Any]:
    """The options of the route Alertmanager itself picks (``amtool config routes test``),
    those it inherits from the root route included (the shipped routes nest one deep)."""
    argv = [
        amtool_binary(),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        "--tree",
        "--verify.receivers=incident-receiver",
        *(f"{k}={v}" for k, v in labels.items()),
    ]
    result = run_tool(argv)
    assert result.returncode == 0, tool_output(result)
    tree = [line for line in result.stdout.splitlines() if "└──" in line]
    leaf = tree[-1].split("└──", 1)[1].split("  receiver:", 1)[0].strip()
    root: dict[str, Any] = {**ALERTMANAGER_DEFAULTS, **config["route"]}
    root.pop("routes", None)
    if leaf == "default-route":
        return root
    [route_config] = [
        sub for sub in config["route"]["routes"] if "{" + ", ".join(sub["matchers"]) + "}" == leaf
    ]
    return {**root, **route_config}


def _alertmanager_group_by(labels: Mapping[str, str], config: Mapping[str, Any]) -> list[str]:
    """group_by of the route Alertmanager itself picks."""
    group_by: list[str] = _alertmanager_route(labels, config)["group_by"]
    return group_by


def test_alertmanager_groups_like_the_receiver() -> None:
    """One Alertmanager group per incident: group_by of the route each alert takes equals
    the group_by of the routing rule it meets in the receiver."""
    config = load_yaml(ALERTMANAGER_CONFIG)
    cfg = rules_config()
    seen: dict[tuple[str, str], list[str]] = {}
    for labels in LABEL_SETS:
        routed = route(cfg, labels)
        key = (labels["alertname"], routed.rule)
        if key in seen:
            continue
        seen[key] = _alertmanager_group_by(labels, config)
        assert set(seen[key]) == set(routed.group_labels), (
            f"{labels['alertname']}: Alertmanager groups by {seen[key]}, the receiver's rule "
            f"{routed.rule} by {list(routed.group_labels)}\n"
        )


@pytest.mark.parametrize("labels", HEARTBEAT_LABEL_SETS, ids=_id)
def test_alertmanager_repeats_heartbeat_alerts_within_every(labels: dict[str, str]) -> None:
    """Alertmanager sends a heartbeat's alert to the receiver at least once per the
    heartbeat's ``every``. A group is flushed every group_interval, and a flush repeats an
    unchanged notification once more than repeat_interval has passed since the last send,
    so the worst gap between webhooks is under group_interval + repeat_interval (equal
    values give 2 x group_interval, not 1). The first one goes out after group_wait."""
    cfg = rules_config()
    beat = cfg.heartbeats[HEARTBEATS[labels["alertname"]]]
    options = _alertmanager_route(labels, load_yaml(ALERTMANAGER_CONFIG))
    group_wait = parse_duration(options["group_wait"])
    group_interval = parse_duration(options["group_interval"])
    repeat_interval = parse_duration(options["repeat_interval"])
    gap = group_interval + repeat_interval
    assert gap <= beat.every, (
        f"{labels['alertname']}: Alertmanager may repeat it only every {format_duration(gap)}"
        f" (group_interval + repeat_interval), the heartbeat expects it every "
        f"{format_duration(beat.every)}"
    )
    assert group_wait < beat.every, f"{labels['alertname']}: group_wait {options['group_wait']}"
