"""Routing: a pure function from a label set to a rule, severity, category and incident key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from receiver.config.matchers import matches_all
from receiver.config.models import RuleConfig, RulesConfig
from receiver.domain import heartbeats
from receiver.domain.model import Route

DEFAULT_RULE = "default"
T = TypeVar("T")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def incident_key(rule: str, group_labels: Mapping[str, str]) -> str:
    """``rule{label="value",...}`` in group_by order; missing labels are empty strings."""
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in group_labels.items())
    return f"{rule}{{{inner}}}"


def first_match(cfg: RulesConfig, labels: Mapping[str, str]) -> RuleConfig | None:
    """The first rule whose matchers all accept the labels."""
    for rule in cfg.rules:
        if matches_all(rule.matchers, labels):
            return rule
    return None


def _severity(cfg: RulesConfig, rule: RuleConfig | None, labels: Mapping[str, str]) -> str:
    if rule is None:
        return cfg.defaults.severity
    if rule.severity is not None:
        return rule.severity
    if rule.severity_from is not None:
        mapped = rule.severity_from.map.get(labels.get(rule.severity_from.label, ""))
        return mapped or rule.severity_from.default or cfg.defaults.severity
    return cfg.defaults.severity


class Router:
    """Routes label sets for one rules file, remembering which rule and severity apply.

    Which rule matches, and the severity it gives, depend only on the labels that the
    matchers and ``severity_from`` name; an alert storm repeats those values, so most
    alerts skip the matchers and only their group_by labels are read.
    """

    MAX_CACHED = 10_000

    def __init__(self, cfg: RulesConfig) -> None:
        self.cfg = cfg
        names: set[str] = set()
        for rule in cfg.rules:
            names.update(m.name for m in rule.matchers)
            if rule.severity_from:
                names.add(rule.severity_from.label)
        self.names = tuple(sorted(names))
        self._rules: dict[tuple[str, ...], tuple[RuleConfig | None, str, list[str]]] = {}
        self._routes: dict[tuple[str, ...], Route] = {}

    def route(self, labels: Mapping[str, str]) -> Route:
        """The same answer as ``route(cfg, labels)``."""
        get = labels.get
        if get("alertname") == heartbeats.ALERTNAME and (own := _silence(self.cfg, labels)):
            return own
        key = tuple([get(name, "") for name in self.names])
        found = self._rules.get(key)
        if found is None:
            rule = first_match(self.cfg, labels)
            group_by = (rule.group_by if rule else None) or self.cfg.defaults.group_by
            found = (rule, _severity(self.cfg, rule, labels), group_by)
            self._rules[key] = _bounded(self._rules, found)
        rule, severity, group_by = found
        route_key = (rule.name if rule else "", severity, *[get(name, "") for name in group_by])
        cached = self._routes.get(route_key)
        if cached is None:
            cached = self._routes[route_key] = _bounded(
                self._routes, _build(self.cfg, rule, severity, labels)
            )
        return cached


def _bounded(cache: dict[Any, Any], value: T) -> T:
    """Forget everything when a cache is full: simple, and a storm refills it at once."""
    if len(cache) >= Router.MAX_CACHED:
        cache.clear()
    return value


def _silence(cfg: RulesConfig, labels: Mapping[str, str]) -> Route | None:
    """The route of the receiver's own alert of a heartbeat's silence, if it is one."""
    beat = heartbeats.of_labels(cfg, labels)
    return heartbeats.route(cfg, beat) if beat is not None else None


def route(cfg: RulesConfig, labels: Mapping[str, str]) -> Route:
    """Classify one alert's labels; the receiver's own alert of a heartbeat's silence goes
    to that heartbeat's severity and category, keyed ``heartbeat:<name>``."""
    if (own := _silence(cfg, labels)) is not None:
        return own
    rule = first_match(cfg, labels)
    return _build(cfg, rule, _severity(cfg, rule, labels), labels)


def _build(
    cfg: RulesConfig, rule: RuleConfig | None, severity: str, labels: Mapping[str, str]
) -> Route:
    name = rule.name if rule else DEFAULT_RULE
    category = (rule.category if rule else None) or cfg.defaults.category
    group_by = (rule.group_by if rule else None) or cfg.defaults.group_by
    group_labels = {label: labels.get(label, "") for label in group_by}
    team = cfg.categories[category].team
    return Route(
        rule=name,
        severity=severity,
        category=category,
        team=team,
        key=incident_key(name, group_labels),
        group_labels=group_labels,
        jira_project=cfg.teams[team].jira_project or cfg.jira.project,
        jira_priority=cfg.severities[severity].jira_priority,
        issue_type=cfg.jira.issue_type,
        summary=rule.summary if rule else None,
    )
