"""Routing: a pure function from a label set to a rule, severity, category and incident key."""

from __future__ import annotations

from collections.abc import Mapping

from receiver.config.matchers import matches_all
from receiver.config.models import RuleConfig, RulesConfig
from receiver.domain.model import Route

DEFAULT_RULE = "default"


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


def route(cfg: RulesConfig, labels: Mapping[str, str]) -> Route:
    """Classify one alert's labels."""
    rule = first_match(cfg, labels)
    name = rule.name if rule else DEFAULT_RULE
    category = (rule.category if rule else None) or cfg.defaults.category
    group_by = (rule.group_by if rule else None) or cfg.defaults.group_by
    group_labels = {label: labels.get(label, "") for label in group_by}
    team = cfg.categories[category].team
    severity = _severity(cfg, rule, labels)
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
    )
