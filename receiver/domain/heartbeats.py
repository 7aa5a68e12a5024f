"""Heartbeats (dead man's switches): which alerts are signs of life, and what a heartbeat's
silence becomes. Pure; the rules, the last signs of life and the clock are arguments.

A heartbeat is watched once it has shown a sign of life (an alert matching its matchers,
or a ping through the API), as a new check is in the tools that popularised them: a
receiver started before Prometheus is up, or one whose rules name a heartbeat nobody sends
yet, pages nobody. From then on, silence past ``every + grace`` opens the receiver's own
incident: a synthetic alert ``HeartbeatMissing`` that goes through ingestion like any
other (so replicas and retries fold into one incident), and resolves when life returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from receiver.config.matchers import Matcher, parse_matcher
from receiver.config.models import HeartbeatConfig, RulesConfig
from receiver.domain.model import Alert, AlertStatus, Route

ALERTNAME = "HeartbeatMissing"
LABEL = "heartbeat"  # the synthetic alert's label naming its heartbeat
RULE_PREFIX = "heartbeat:"  # the routing rule (and incident key) of a heartbeat's silence


@cache
def _matcher(text: str) -> Matcher:
    return parse_matcher(text)


def matching(cfg: RulesConfig, labels: Mapping[str, str]) -> str | None:
    """The heartbeat an alert with these labels is a sign of life of (the first whose
    matchers all accept it), or None: an alert that feeds a heartbeat opens no incident."""
    for name, beat in cfg.heartbeats.items():
        if beat.matchers and all(_matcher(m).matches(labels) for m in beat.matchers):
            return name
    return None


def rule_name(name: str) -> str:
    """The routing rule, and incident key, of a heartbeat's silence."""
    return f"{RULE_PREFIX}{name}"


def of_labels(cfg: RulesConfig, labels: Mapping[str, str]) -> str | None:
    """The heartbeat a synthetic ``HeartbeatMissing`` alert stands for, if it is one."""
    name = labels.get(LABEL)
    if labels.get("alertname") != ALERTNAME or name not in cfg.heartbeats:
        return None
    return name


def route(cfg: RulesConfig, name: str) -> Route:
    """Where a heartbeat's silence goes: its severity, category and team, keyed by name."""
    beat = cfg.heartbeats[name]
    team = cfg.categories[beat.category].team
    rule = rule_name(name)
    return Route(
        rule=rule,
        severity=beat.severity,
        category=beat.category,
        team=team,
        key=rule,
        group_labels={},
        jira_project=cfg.teams[team].jira_project or cfg.jira.project,
        jira_priority=cfg.severities[beat.severity].jira_priority,
        issue_type=cfg.jira.issue_type,
        summary=f"Heartbeat {name} is silent",
    )


def split(
    cfg: RulesConfig, webhooks: Sequence[Sequence[Alert]], now: datetime
) -> tuple[list[Sequence[Alert]], dict[str, datetime]]:
    """The webhooks without the alerts that feed a heartbeat, and the heartbeats that a
    firing one of those showed alive at ``now``."""
    seen: dict[str, datetime] = {}
    kept: list[Sequence[Alert]] = []
    for alerts in webhooks:
        rest = []
        for alert in alerts:
            name = matching(cfg, alert.labels)
            if name is None:
                rest.append(alert)
            elif alert.status is AlertStatus.FIRING:
                seen[name] = now
        kept.append(rest if len(rest) != len(alerts) else alerts)
    return kept, seen


@dataclass(frozen=True)
class Silence:
    """What a heartbeat's state calls for now."""

    name: str
    last_seen: datetime
    missed: bool  # silent past every + grace


def state(name: str, beat: HeartbeatConfig, last_seen: datetime, now: datetime) -> Silence:
    """Whether a heartbeat last seen at ``last_seen`` is missed at ``now``."""
    return Silence(name, last_seen, now > last_seen + beat.silent_after)


def fingerprint(name: str) -> str:
    """The synthetic alert's fingerprint: one per heartbeat, so a repeat is a duplicate."""
    return f"heartbeat-{name}"


def missing_alert(
    name: str, beat: HeartbeatConfig, last_seen: datetime, status: AlertStatus, now: datetime
) -> Alert:
    """The synthetic alert of a heartbeat's silence: firing from the moment it was missed,
    resolved at ``now`` once life returned."""
    since = last_seen + beat.silent_after
    every = int(beat.every.total_seconds())
    return Alert(
        fingerprint=fingerprint(name),
        status=status,
        labels={"alertname": ALERTNAME, LABEL: name},
        annotations={
            "summary": f"Heartbeat {name} is silent",
            "description": (
                f"No sign of life from heartbeat {name!r} since {last_seen.isoformat()} "
                f"(expected every {every}s, grace {int(beat.grace.total_seconds())}s). "
                "Prometheus, Alertmanager or the job that pings it may be down: alerts may "
                "not be reaching the receiver."
            ),
        },
        starts_at=since,
        ends_at=now if status is AlertStatus.RESOLVED else None,
        generator_url="",
    )
