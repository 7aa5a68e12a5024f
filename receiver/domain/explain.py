"""What ``receiver route-test`` shows: what an alert with given labels, or a beta-tester
report, becomes under the rules, and whom it pages at a given time. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from receiver.config.durations import format_duration
from receiver.config.models import RulesConfig
from receiver.domain import heartbeats
from receiver.domain.maintenance import applying, from_rules
from receiver.domain.oncall import step_zero_pages
from receiver.domain.reports import Environment, Report, Reporter, triage
from receiver.domain.routing import route


def with_channels(cfg: RulesConfig, page: dict[str, Any]) -> dict[str, Any]:
    """A page with the channels it tries, in order, and how long each waits for an ack."""
    person = cfg.people.get(str(page["person"]))
    channels = list(person.notify) if person is not None else ["slack"]
    return {**page, "channels": channels, "page_retry": format_duration(cfg.page_retry)}


def route_report(cfg: RulesConfig, labels: dict[str, str], at: datetime) -> dict[str, Any]:
    """The route-test answer as a JSON-ready object, with the rules file's maintenance
    window that applies at ``at``, if one does (its pages held until it ends, unless the
    severity ignores maintenance)."""
    r = route(cfg, labels)
    window = None
    found = applying(from_rules(cfg), [labels], at)
    if found is not None:
        held = not cfg.severities[r.severity].ignore_maintenance
        window = {"name": found[0].name, "until": found[1].isoformat(),
                  "reason": found[0].reason, "held": held}  # fmt: skip
    pages = [with_channels(cfg, p.as_json()) for p in step_zero_pages(cfg, r.team, r.severity, at)]
    if window is not None and window["held"]:
        pages = [{**p, "at": window["until"], "deferred": True} for p in pages]
    beat = heartbeats.matching(cfg, labels)  # a sign of life: no incident, no page
    return {
        "heartbeat": beat,
        "rule": r.rule,
        "severity": r.severity,
        "category": r.category,
        "team": r.team,
        "incident_key": r.key,
        "jira": {
            "project": r.jira_project,
            "priority": r.jira_priority,
            "issue_type": r.issue_type,
        },
        "pages": [] if beat else pages,
        "maintenance": window,
    }


def triage_report(
    cfg: RulesConfig,
    title: str,
    at: datetime,
    *,
    description: str | None = None,
    category: str | None = None,
    os: str | None = None,
    browser: str | None = None,
) -> dict[str, Any]:
    """The route-test answer for a beta-tester report, as a JSON-ready object."""
    tried = Report(
        title=title,
        description=description or title,
        reporter=Reporter(email="tester@example.com"),
        category=category,
        environment=Environment(os=os, browser=browser),
    )
    decided = triage(tried, cfg)
    team = cfg.categories[decided.category].team
    policy = cfg.severities[decided.severity]
    return {
        "rule": decided.rule,
        "severity": decided.severity,
        "category": decided.category,
        "team": team,
        "incident_key": "report:<id>",
        "jira": {
            "project": cfg.teams[team].jira_project or cfg.jira.project,
            "priority": policy.jira_priority,
            "issue_type": cfg.jira.issue_type,
        },
        "pages": [
            with_channels(cfg, p.as_json())
            for p in step_zero_pages(cfg, team, decided.severity, at)
        ],
    }
