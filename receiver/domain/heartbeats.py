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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from receiver.config.matchers import Matcher, MatchType, parse_matcher
from receiver.config.models import (
    HEARTBEAT_ALERTNAME,
    HEARTBEAT_LABEL,
    HeartbeatConfig,
    RulesConfig,
)
from receiver.domain.model import Alert, AlertStatus, Route

ALERTNAME = HEARTBEAT_ALERTNAME
LABEL = HEARTBEAT_LABEL  # the synthetic alert's label naming its heartbeat
RULE_PREFIX = "heartbeat:"  # the routing rule (and incident key) of a heartbeat's silence


class Signs:
    """The heartbeats of one rules file with their matchers parsed once: which heartbeat an
    alert is a sign of life of. An alertname a heartbeat requires is looked at first, so the
    alerts of a storm cost a dictionary lookup each."""

    def __init__(self, cfg: RulesConfig) -> None:
        self.beats: list[tuple[str, tuple[Matcher, ...], str | None]] = []
        for name, beat in cfg.heartbeats.items():
            if not beat.matchers:
                continue  # pinged through the API only
            parsed = tuple(parse_matcher(m) for m in beat.matchers)
            named = next(
                (m.value for m in parsed if m.name == "alertname" and m.op is MatchType.EQUAL),
                None,
            )
            self.beats.append((name, parsed, named))

    def of(self, labels: Mapping[str, str]) -> str | None:
        """The heartbeat an alert with these labels feeds (the first whose matchers all
        accept it), or None. The receiver's own ``HeartbeatMissing`` alert feeds none."""
        alertname = labels.get("alertname")
        if alertname == ALERTNAME:
            return None
        for name, matchers, named in self.beats:
            if named is not None and alertname != named:
                continue
            if all(m.matches(labels) for m in matchers):
                return name
        return None


_SIGNS: dict[int, tuple[RulesConfig, Signs]] = {}


def signs(cfg: RulesConfig) -> Signs:
    """The compiled heartbeats of a rules file, made once per rules file in force (kept by
    identity: rules files are not hashable; a few reloads' worth are kept)."""
    found = _SIGNS.get(id(cfg))
    if found is None or found[0] is not cfg:
        if len(_SIGNS) >= 8:
            _SIGNS.clear()
        found = _SIGNS[id(cfg)] = (cfg, Signs(cfg))
    return found[1]


def matching(cfg: RulesConfig, labels: Mapping[str, str]) -> str | None:
    """The heartbeat an alert with these labels is a sign of life of, or None: an alert
    that feeds a heartbeat opens no incident."""
    return signs(cfg).of(labels)


def rule_name(name: str) -> str:
    """The routing rule, and incident key, of a heartbeat's silence."""
    return f"{RULE_PREFIX}{name}"


def is_silence(rule: str) -> bool:
    """Whether an incident of this rule is a heartbeat's silence (the receiver's own)."""
    return rule.startswith(RULE_PREFIX)


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


@dataclass(frozen=True)
class Silence:
    """What a heartbeat's state calls for now."""

    name: str
    last_seen: datetime
    missed: bool  # silent past every + grace


def state(name: str, beat: HeartbeatConfig, last_seen: datetime, now: datetime) -> Silence:
    """Whether a heartbeat last seen at ``last_seen`` is missed at ``now``."""
    return Silence(name, last_seen, is_silent(beat, last_seen, now))


def is_silent(beat: HeartbeatConfig, last_seen: datetime, now: datetime) -> bool:
    """Whether a heartbeat last seen at ``last_seen`` is past ``every + grace`` at ``now``."""
    return now > last_seen + beat.silent_after


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
