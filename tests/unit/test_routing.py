"""Routing a label set to rule, severity, category, team, incident key and JIRA fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.config import RulesConfig, load_rules, parse_rules
from receiver.config.matchers import matches_all
from receiver.domain.routing import DEFAULT_RULE, first_match, incident_key, route

SHIPPED = Path(__file__).resolve().parents[2] / "routing_rules.yaml"


@pytest.fixture(scope="module")
def rules() -> RulesConfig:
    return load_rules(SHIPPED)


ROUTES = [
    # labels, rule, severity, category, team, key
    (
        {"alertname": "KISTokenRefreshFailed", "service": "kis-gateway"},
        "kis-token-refresh-failure",
        "P1",
        "api",
        "backend",
        'kis-token-refresh-failure{alertname="KISTokenRefreshFailed",service="kis-gateway"}',
    ),
    (
        {"alertname": "KISTokenRefreshFailed"},
        "kis-token-refresh-failure",
        "P1",
        "api",
        "backend",
        'kis-token-refresh-failure{alertname="KISTokenRefreshFailed",service=""}',
    ),
    (
        {"alertname": "HighResponseTime", "service": "order-api", "severity": "critical"},
        "high-response-time",
        "P1",
        "performance",
        "devops",
        'high-response-time{alertname="HighResponseTime",service="order-api"}',
    ),
    (
        {"alertname": "HighResponseTime", "service": "order-api", "severity": "warning"},
        "high-response-time",
        "P2",
        "performance",
        "devops",
        'high-response-time{alertname="HighResponseTime",service="order-api"}',
    ),
    (
        {"alertname": "HighResponseTime", "service": "order-api"},
        "high-response-time",
        "P2",
        "performance",
        "devops",
        'high-response-time{alertname="HighResponseTime",service="order-api"}',
    ),
    (
        {"alertname": "HighResponseTime", "service": "order-api", "severity": "info"},
        "high-response-time",
        "P2",
        "performance",
        "devops",
        'high-response-time{alertname="HighResponseTime",service="order-api"}',
    ),
    (
        {"alertname": "HighResponseTime", "service": "order-api", "severity": "CRITICAL"},
        "high-response-time",
        "P2",
        "performance",
        "devops",
        'high-response-time{alertname="HighResponseTime",service="order-api"}',
    ),
    (
        {"alertname": "ServiceDown", "service": "order-api", "instance": "10.0.0.1:8080"},
        "trading-service-down",
        "P0",
        "functional",
        "features",
        'trading-service-down{alertname="ServiceDown",service="order-api"}',
    ),
    (
        {"alertname": "ServiceDown", "service": "kis-gateway"},
        "trading-service-down",
        "P0",
        "functional",
        "features",
        'trading-service-down{alertname="ServiceDown",service="kis-gateway"}',
    ),
    (
        {"alertname": "ServiceDown", "service": "foo"},
        "service-down",
        "P1",
        "network",
        "devops",
        'service-down{alertname="ServiceDown",service="foo"}',
    ),
    (
        # the regex is anchored: order-api-v2 is not order-api
        {"alertname": "ServiceDown", "service": "order-api-v2"},
        "service-down",
        "P1",
        "network",
        "devops",
        'service-down{alertname="ServiceDown",service="order-api-v2"}',
    ),
    (
        {"alertname": "ServiceDown"},
        "service-down",
        "P1",
        "network",
        "devops",
        'service-down{alertname="ServiceDown",service=""}',
    ),
    (
        {"alertname": "SomethingUnknown", "service": "bar"},
        "default",
        "P3",
        "functional",
        "features",
        'default{alertname="SomethingUnknown",service="bar"}',
    ),
    (
        {},
        "default",
        "P3",
        "functional",
        "features",
        'default{alertname="",service=""}',
    ),
    (
        {"alertname": "servicedown", "service": "order-api"},
        "default",
        "P3",
        "functional",
        "features",
        'default{alertname="servicedown",service="order-api"}',
    ),
    (
        {"alertname": "UnauthorizedAccessSpike", "service": "auth"},
        "unauthorized-access-spike",
        "P1",
        "security",
        "security",
        'unauthorized-access-spike{alertname="UnauthorizedAccessSpike",service="auth"}',
    ),
    (
        {"alertname": "MarketDataStale", "feed": "krx", "service": "md"},
        "stale-market-data",
        "P1",
        "data",
        "data",
        'stale-market-data{alertname="MarketDataStale",feed="krx"}',
    ),
    (
        {"alertname": "ReceiverOutboxStale", "service": "receiver"},
        "receiver-backlog",
        "P1",
        "performance",
        "devops",
        'receiver-backlog{alertname="ReceiverOutboxStale"}',
    ),
    (
        {"alertname": "ReceiverDown"},
        "receiver-health",
        "P2",
        "performance",
        "devops",
        'receiver-health{alertname="ReceiverDown"}',
    ),
    (
        {"alertname": "HighCPUUsage", "instance": "db1:9100", "severity": "critical"},
        "resource-saturation",
        "P1",
        "performance",
        "devops",
        'resource-saturation{alertname="HighCPUUsage",instance="db1:9100"}',
    ),
    (
        {"alertname": "KISApiErrors", "service": "kis-gateway", "severity": "warning"},
        "kis-api-errors",
        "P2",
        "api",
        "backend",
        'kis-api-errors{alertname="KISApiErrors",service="kis-gateway"}',
    ),
    (
        {"alertname": "FrontendErrorRate", "service": "web"},
        "frontend-errors",
        "P2",
        "ui",
        "frontend",
        'frontend-errors{alertname="FrontendErrorRate",service="web"}',
    ),
    (
        {"alertname": "HighNetworkLatency", "service": "edge"},
        "network-latency",
        "P3",
        "network",
        "devops",
        'network-latency{alertname="HighNetworkLatency",service="edge"}',
    ),
    (
        {"alertname": "X", "service": 'a"b\\c\nd'},
        "default",
        "P3",
        "functional",
        "features",
        'default{alertname="X",service="a\\"b\\\\c\\nd"}',
    ),
]


@pytest.mark.parametrize(
    ("labels", "rule", "severity", "category", "team", "key"),
    ROUTES,
    ids=[f"{i}-{row[1]}" for i, row in enumerate(ROUTES)],
)
def test_route(
    rules: RulesConfig,
    labels: dict[str, str],
    rule: str,
    severity: str,
    category: str,
    team: str,
    key: str,
) -> None:
    r = route(rules, labels)
    assert (r.rule, r.severity, r.category, r.team, r.key) == (
        rule,
        severity,
        category,
        team,
        key,
    )


@pytest.mark.parametrize(
    ("labels", "project", "priority"),
    [
        ({"alertname": "ServiceDown", "service": "order-api"}, "OPS", "Highest"),
        ({"alertname": "KISTokenRefreshFailed"}, "OPS", "High"),
        ({"alertname": "HighResponseTime", "severity": "warning"}, "OPS", "Medium"),
        ({"alertname": "NoSuchAlert"}, "OPS", "Low"),
        ({"alertname": "UnauthorizedAccessSpike"}, "SEC", "High"),
    ],
)
def test_route_jira(
    rules: RulesConfig, labels: dict[str, str], project: str, priority: str
) -> None:
    r = route(rules, labels)
    assert (r.jira_project, r.jira_priority, r.issue_type) == (project, priority, "Incident")


def test_first_match_wins_in_shipped_rules(rules: RulesConfig) -> None:
    labels = {"alertname": "ServiceDown", "service": "order-api"}
    matching = [rule.name for rule in rules.rules if matches_all(rule.matchers, labels)]
    assert matching == ["trading-service-down", "service-down"]
    first = first_match(rules, labels)
    assert first is not None
    assert first.name == "trading-service-down"
    assert route(rules, labels).rule == "trading-service-down"


def test_group_labels(rules: RulesConfig) -> None:
    r = route(rules, {"alertname": "MarketDataStale", "feed": "krx", "service": "md"})
    assert r.group_labels == {"alertname": "MarketDataStale", "feed": "krx"}
    r = route(rules, {"alertname": "KISTokenRefreshFailed"})
    assert r.group_labels == {"alertname": "KISTokenRefreshFailed", "service": ""}


def test_unmatched_has_no_rule(rules: RulesConfig) -> None:
    assert first_match(rules, {"alertname": "Nope"}) is None
    assert route(rules, {"alertname": "Nope"}).rule == DEFAULT_RULE == "default"


@pytest.mark.parametrize(
    ("rule", "group", "key"),
    [
        ("r", {}, "r{}"),
        ("r", {"a": "1"}, 'r{a="1"}'),
        ("r", {"b": "2", "a": "1"}, 'r{b="2",a="1"}'),
        ("r", {"a": ""}, 'r{a=""}'),
        ("r", {"a": 'q"'}, 'r{a="q\\""}'),
        ("r", {"a": "back\\slash"}, 'r{a="back\\\\slash"}'),
        ("r", {"a": "two\nlines"}, 'r{a="two\\nlines"}'),
    ],
)
def test_incident_key(rule: str, group: dict[str, str], key: str) -> None:
    assert incident_key(rule, group) == key


def test_label_values_cannot_forge_a_key(rules: RulesConfig) -> None:
    a = route(rules, {"alertname": "X", "service": 'a",service="b'})
    b = route(rules, {"alertname": "X", "service": "a"})
    assert a.key != b.key


SMALL = """\
defaults: {severity: P3, category: general}
severities:
  P1: {respond_within: 4h, ack_timeout: 30m, jira_priority: High}
  P2: {respond_within: 24h, ack_timeout: 4h, jira_priority: Medium}
  P3: {respond_within: 3d, ack_timeout: 24h, jira_priority: Low}
categories:
  general: {team: ops}
  db: {team: dba}
teams:
  ops: {rotation: r, lead: a, channel: "#ops"}
  dba: {rotation: r, lead: a, channel: "#dba", jira_project: DBA}
roles: {tech_lead: a, project_manager: a}
people:
  a: {name: A}
rotations:
  r: {timezone: UTC, members: [a], shift: 1d, handoff: "2026-01-01T00:00"}
escalation:
  default: [{after: 0m, notify: [oncall]}]
channels: {alerts: "#a", announce: "#b", digest: "#a"}
jira: {project: GEN, issue_type: Bug}
rules:
  - name: catch-db
    matchers: ['alertname=~"DB.*"']
    category: db
  - name: db-down
    matchers: ['alertname="DBDown"']
    severity: P1
    category: db
  - name: mapped-no-default
    matchers: ['alertname="Mapped"']
    severity_from: {label: level, map: {high: P1}}
  - name: no-severity
    matchers: ['alertname="Plain"', 'env!="dev"']
    group_by: [alertname, env]
"""


@pytest.fixture(scope="module")
def small() -> RulesConfig:
    return parse_rules(SMALL, "small.yaml")


@pytest.mark.parametrize(
    ("labels", "rule", "severity", "category", "team", "key", "project", "priority"),
    [
        # the earlier, broader rule wins over the exact later one
        ({"alertname": "DBDown"}, "catch-db", "P3", "db", "dba", 'catch-db{alertname="DBDown"}',
         "DBA", "Low"),
        ({"alertname": "Mapped", "level": "high"}, "mapped-no-default", "P1", "general", "ops",
         'mapped-no-default{alertname="Mapped"}', "GEN", "High"),
        # unmapped value and no severity_from.default: the defaults' severity
        ({"alertname": "Mapped", "level": "low"}, "mapped-no-default", "P3", "general", "ops",
         'mapped-no-default{alertname="Mapped"}', "GEN", "Low"),
        ({"alertname": "Plain", "env": "prod"}, "no-severity", "P3", "general", "ops",
         'no-severity{alertname="Plain",env="prod"}', "GEN", "Low"),
        # env!="dev" holds when env is missing
        ({"alertname": "Plain"}, "no-severity", "P3", "general", "ops",
         'no-severity{alertname="Plain",env=""}', "GEN", "Low"),
        ({"alertname": "Plain", "env": "dev"}, "default", "P3", "general", "ops",
         'default{alertname="Plain"}', "GEN", "Low"),
    ],
)  # fmt: skip
def test_route_small_rules(
    small: RulesConfig,
    labels: dict[str, str],
    rule: str,
    severity: str,
    category: str,
    team: str,
    key: str,
    project: str,
    priority: str,
) -> None:
    r = route(small, labels)
    assert (r.rule, r.severity, r.category, r.team, r.key) == (
        rule,
        severity,
        category,
        team,
        key,
    )
    assert (r.jira_project, r.jira_priority, r.issue_type) == (project, priority, "Bug")
